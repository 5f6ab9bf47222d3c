"""Tests of roots_course.representation.embeddings: one-hot lookup, neighbours, PCA, similarity, model_to_inspect."""

from __future__ import annotations

import pytest
import torch

from roots_course.representation import embeddings
from roots_course.errors import DataError


def test_one_hot_times_table_is_the_lookup():
    table = torch.nn.Embedding(30, 6)
    ids = torch.tensor([[0, 29, 3], [3, 3, 7]])
    assert torch.equal(embeddings.one_hot_lookup(table.weight, ids), table(ids))


def test_cosine_neighbours_and_allowed_mask():
    table = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0], [10.0, 0.5]])
    near = embeddings.cosine_neighbours(table, 0, k=2)
    assert [n.token_id for n in near] == [4, 1]  # direction counts, not length
    assert near[0].cosine == pytest.approx(10 / (100.25**0.5))
    allowed = torch.tensor([True, True, True, True, False])
    assert [n.token_id for n in embeddings.cosine_neighbours(table, 0, k=10, allowed=allowed)] == [1, 3, 2]
    with pytest.raises(DataError):
        embeddings.cosine_neighbours(table, 5)


def test_pca_finds_the_direction_of_largest_variance():
    t = torch.linspace(-1, 1, 50)
    direction = torch.tensor([3.0, 4.0, 0.0]) / 5
    rows = t[:, None] * direction * 10 + 0.01 * torch.randn(50, 3) + torch.tensor([5.0, 5.0, 5.0])
    p = embeddings.pca_2d(rows)
    assert p.coords.shape == (50, 2) and p.directions.shape == (2, 3)
    assert abs(float(p.directions[0] @ direction)) == pytest.approx(1.0, abs=1e-3)
    assert float(p.explained[0]) > 0.99 and p.explained_total <= 1.0 + 1e-6
    torch.testing.assert_close(p.coords.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    with pytest.raises(DataError):
        embeddings.pca_2d(torch.randn(1, 3))


def test_similarity_mean_cosine_and_neighbour_agreement():
    rows = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(embeddings.similarity(rows), rows @ rows.T)
    torch.testing.assert_close(embeddings.similarity(rows, cosine=True).diagonal(), torch.ones(3))
    assert embeddings.mean_cosine(rows, [0, 1]) == pytest.approx(1.0)
    assert embeddings.mean_cosine(rows, [0, 1, 2]) == pytest.approx(1 / 3)
    clusters = torch.cat([torch.randn(10, 8) * 0.1 + 5 * torch.eye(8)[0], torch.randn(10, 8) * 0.1 + 5 * torch.eye(8)[1]])
    agreement, chance = embeddings.neighbour_agreement(clusters, list(range(20)), ["a"] * 10 + ["b"] * 10)
    assert agreement == 1.0 and chance == pytest.approx(0.5)
    assert embeddings.seen_tokens(torch.tensor([0, 2, 2]), 4).tolist() == [True, False, True, False]


@pytest.mark.slow
def test_model_to_inspect_trains_a_demo_once_and_never_writes_pretrained(tmp_path):
    import pydoc_data.topics

    from roots_course.course.config import load_profile
    from roots_course.course.pretraining import Run

    text = tmp_path / "notes.txt"
    text.write_text("\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))[:30_000])
    profile = load_profile("smoke", overrides={"tokenizer.vocab_size": 280, "model.n_layer": 1, "model.n_embd": 16,
                                               "model.block_size": 16, "train.batch_size": 2,
                                               "train.eval_batches": 1, "device": "cpu"})
    profile.paths["artifacts"] = tmp_path / "artifacts"
    run = Run.for_profile(profile, text_file=text)
    said: list[str] = []
    first = embeddings.model_to_inspect(run, 2, say=said.append)
    assert first.source == embeddings.DEMO_CHECKPOINT and first.steps == 2
    assert not run.paths.checkpoint("pretrained").exists()
    assert any("demonstration" in line for line in said)
    said.clear()
    again = embeddings.model_to_inspect(run, 2, say=said.append)
    assert any("reusing" in line for line in said) and not any("pretraining" in line for line in said)
    torch.testing.assert_close(again.model.tok_emb.weight, first.model.tok_emb.weight)
