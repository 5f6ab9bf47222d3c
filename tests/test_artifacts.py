"""Atomic writes, safetensors round trips and clear errors for damaged files."""

import json
import os

import pytest
import torch

from roots_course.errors import CheckpointError
from roots_course.store import artifacts, integrity
from roots_course.store.artifacts import ArtifactPaths


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "a.json"
    artifacts.atomic_write_json(target, {"x": 1})
    artifacts.atomic_write_json(target, {"x": 2})
    assert artifacts.read_json(target) == {"x": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    artifacts.atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        artifacts.atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_tensors_round_trip_and_tied_tensors_are_saved(tmp_path):
    w = torch.randn(4, 3)
    tensors = {"a": w, "b": w, "c": torch.arange(5)}  # "a" and "b" share storage, as tied weights do
    artifacts.save_tensors(tmp_path / "t.safetensors", tensors, metadata={"k": "v"})
    loaded = artifacts.load_tensors(tmp_path / "t.safetensors")
    assert set(loaded) == {"a", "b", "c"}
    torch.testing.assert_close(loaded["a"], w)
    torch.testing.assert_close(loaded["c"], torch.arange(5))


def test_truncated_safetensors_names_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    artifacts.save_tensors(path, {"w": torch.randn(100, 100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        artifacts.load_tensors(path)


def test_altered_header_names_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    artifacts.save_tensors(path, {"w": torch.randn(10)})
    data = bytearray(path.read_bytes())
    data[8] = ord("#")  # the JSON header starts at byte 8
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        artifacts.load_tensors(path)


def test_altered_weights_are_noticed(tmp_path):
    """safetensors checks only the header against the size: flipped weight bytes are caught by the
    checksum the profile's manifest recorded (the one integrity layer), named by ``verify`` too."""
    path = tmp_path / "model.safetensors"
    artifacts.save_tensors(path, {"w": torch.zeros(64)})
    integrity.record_tree(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip the bits of one byte of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is damaged: its bytes differ .*altered"):
        artifacts.load_tensors(path)
    assert integrity.check_tree(tmp_path) == [f"{path}: its bytes differ from those written (SHA-256 mismatch)"]
    path.unlink()
    assert integrity.check_tree(tmp_path) == [f"{path}: missing"]


def test_writes_inside_a_recorded_folder_keep_their_checksums(tmp_path):
    artifacts.atomic_write_json(tmp_path / "metrics" / "a.json", {"x": 1})
    artifacts.save_tensors(tmp_path / "t.safetensors", {"w": torch.ones(3)})
    recorded = integrity.record_tree(tmp_path)
    assert sorted(recorded) == ["metrics/a.json", "t.safetensors"]
    artifacts.atomic_write_json(tmp_path / "metrics" / "a.json", {"x": 2})
    artifacts.save_tensors(tmp_path / "t.safetensors", {"w": torch.zeros(3)})
    assert integrity.check_tree(tmp_path) == []
    assert artifacts.read_json(tmp_path / "metrics" / "a.json") == {"x": 2}
    assert not [p.name for p in tmp_path.rglob("*.tmp")], "no temporary file is left behind"


def test_missing_and_broken_json_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.json"):
        artifacts.read_json(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(CheckpointError, match="bad.json"):
        artifacts.read_json(tmp_path / "bad.json")


def test_layout_and_manifest(tmp_path):
    paths = ArtifactPaths(tmp_path, "smoke")
    assert paths.checkpoint("pretrained") == tmp_path / "smoke" / "checkpoints" / "pretrained"
    assert not paths.dir.exists()  # describing the layout creates nothing
    artifacts.update_manifest(paths.manifest, "pretrained", artifacts.provenance(seed=1))
    artifacts.update_manifest(paths.manifest, "finetuned", {"x": 1})
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["pretrained"]["seed"] == 1
    assert manifest["pretrained"]["packages"]["torch"].startswith("2.13")
    assert "commit" in manifest["pretrained"]["git"]
    assert manifest["finetuned"] == {"x": 1}


def test_config_hash_is_stable_and_sensitive():
    assert artifacts.config_hash({"a": 1, "b": 2}) == artifacts.config_hash({"b": 2, "a": 1})
    assert artifacts.config_hash({"a": 1}) != artifacts.config_hash({"a": 2})
