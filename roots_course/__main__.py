"""The command line of the course library.

    python -m roots_course doctor
    python -m roots_course train  --profile cpu [--text FILE] [--steps N] [--out DIR] [--threads N] [--compile]
                                  [--set KEY=VALUE ...] [--restart]
    torchrun --nproc_per_node 2 -m roots_course train --profile smoke ...    (data-parallel, see distributed.py)
    python -m roots_course sample --checkpoint DIR --prompt TEXT [--max-new-tokens N] [--temperature T] ...
    python -m roots_course export --checkpoint DIR --out DIR [--tokenizer FILE]
    python -m roots_course verify --dir artifacts/PROFILE
    python -m roots_course --version

Installed with pip, the same commands are also the ``roots`` command: ``roots doctor``, ``roots train ...``.

``train`` prints progress lines, then a JSON summary as its last output. Started again with the same
command after it was interrupted (killed, out of memory, a power cut), it resumes from its last
checkpoint, written at every validation (``train.eval_every`` steps), unless given ``--restart``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from roots_course import __version__

# Checked here, before the seconds of importing torch and the course: a test keeps these equal to the
# profiles of _config.yml (roots_course.course.config.profile_names) and to core.device.DEVICE_CHOICES.
PROFILES = ("smoke", "cpu", "gpu")
DEVICES = ("auto", "cpu", "cuda", "mps")
FIRST_TRAINING = "python -m roots_course train --profile cpu"

EXAMPLES = {
    "doctor": """examples:
  python -m roots_course doctor          # one OK/WARN/FAIL line per check; exit code 1 when one fails""",
    "train": """examples:
  python -m roots_course train --profile smoke                      # the whole path in under a minute
  python -m roots_course train --profile cpu --steps 500 --threads 1
  python -m roots_course train --text my_notes.txt --tokenizer char # any UTF-8 file, 90/10 split""",
    "sample": """examples:
  python -m roots_course sample --checkpoint artifacts/cpu/checkpoints/pretrained --prompt "The list"
  python -m roots_course sample --checkpoint artifacts/cpu/checkpoints/pretrained --prompt "def " --greedy
  python -m roots_course sample --checkpoint artifacts/cpu/checkpoints/pretrained --prompt "A " --top-p 0.9""",
    "export": """examples:
  python -m roots_course export --checkpoint artifacts/cpu/checkpoints/pretrained --out my_model
  python -m roots_course export --checkpoint artifacts/smoke/checkpoints/pretrained --out /tmp/tiny \\
      --tokenizer artifacts/smoke/tokenizer.json""",
    "verify": """examples:
  python -m roots_course verify --dir artifacts/cpu       # every artifact against manifest.json's checksums
  python -m roots_course verify --dir artifacts/smoke""",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _profile(text: str) -> str:
    if text not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {text!r}; allowed profiles: {', '.join(PROFILES)}")
    return text


def _device(text: str) -> str:
    kind, _, index = text.lower().partition(":")
    if kind not in DEVICES or (index and not (kind == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; allowed devices: {', '.join(DEVICES)} "
                                         "(or cuda:N for GPU number N)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m roots_course", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""examples:
  python -m roots_course doctor                       # is this setup healthy?
  {FIRST_TRAINING}          # on a fresh clone, first (about 10 minutes)
  python -m roots_course sample --checkpoint artifacts/cpu/checkpoints/pretrained --prompt "The list"

`python -m roots_course COMMAND --help` shows a command's options and examples.""")
    parser.add_argument("--version", action="version", version=f"roots_course {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    command("doctor", "check Python, torch, the device, every dependency and offline settings")

    train = command("train", "pretrain a GPT for a profile and print a JSON summary")
    train.add_argument("--profile", type=_profile, default=None, metavar="{" + ",".join(PROFILES) + "}",
                       help="the settings to train with (default: $ROOTS_PROFILE or cpu)")
    train.add_argument("--text", type=Path, default=None,
                       help="train on this UTF-8 file instead of the profile's corpus (90/10 split)")
    train.add_argument("--tokenizer", choices=("char", "bpe", "fast_bpe"), default=None,
                       help="tokenizer kind (default: the profile's)")
    train.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the profile's)")
    train.add_argument("--out", type=Path, default=None, help="artifact folder (default: artifacts/<profile>)")
    train.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    train.add_argument("--device", type=_device, default=None, metavar="{" + ",".join(DEVICES) + "}",
                       help="where to train (default: the profile's)")
    train.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile the training step (default: the profile's train.compile)")
    train.add_argument("--set", dest="settings", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                       help="override one setting of the profile, e.g. --set train.eval_every=50 (checkpoints are "
                            "written at every validation); VALUE is read as YAML; repeat for more")
    train.add_argument("--restart", action="store_true",
                       help="train from step 0 even when an interrupted run of the same settings could be resumed")

    sample = command("sample", "continue a prompt with a trained checkpoint")
    sample.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint folder written by train")
    sample.add_argument("--prompt", default="", help="text to continue")
    sample.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json (default: the one two folders above the checkpoint)")
    sample.add_argument("--max-new-tokens", type=_positive_int, default=100)
    sample.add_argument("--greedy", action="store_true", help="always take the most likely token")
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--top-k", type=_positive_int, default=None)
    sample.add_argument("--top-p", type=float, default=None)
    sample.add_argument("--repetition-penalty", type=float, default=1.0)
    sample.add_argument("--beam-width", type=_positive_int, default=None, help="beam search with this many beams")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", type=_device, default="auto", metavar="{" + ",".join(DEVICES) + "}")

    export = command("export", "write a checkpoint as a Hugging Face transformers model folder")
    export.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint folder written by train")
    export.add_argument("--out", type=Path, required=True, help="the folder to write (config.json, model.safetensors, "
                        "tokenizer.json, ...)")
    export.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json (default: the one two folders above the checkpoint)")

    verify = command("verify", "check every artifact of a folder against the checksums in its manifest.json")
    verify.add_argument("--dir", type=Path, required=True, help="a profile's artifact folder, e.g. artifacts/cpu")
    return parser


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set``: a dotted key of the profile and a YAML value."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a dotted key such as train.steps=50, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"the value of {key.strip()} is not valid YAML: {value!r}") from exc


def cmd_train(args: argparse.Namespace) -> int:
    from roots_course.core import distributed
    from roots_course.course.config import load_profile
    from roots_course.course.pretraining import Run, pretrain

    overrides = dict(args.settings)
    if args.tokenizer:
        overrides["tokenizer.kind"] = args.tokenizer
    if args.compile:
        overrides["train.compile"] = True
    profile = load_profile(args.profile, overrides=overrides or None)
    run = Run.for_profile(profile, out=args.out, text_file=args.text)
    # Under torchrun this joins the process group (one process per GPU or CPU slice); else a no-op.
    with distributed.distributed_session(args.device or profile.device) as device:
        summary = pretrain(run, steps=args.steps, threads=args.threads, device=str(device),
                           say=lambda line: print(line, flush=True), resume=not args.restart)
        if distributed.is_main():
            print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from roots_course.errors import CheckpointError

    if not args.checkpoint.exists():    # told before the seconds of importing torch
        raise CheckpointError(f"no checkpoint at {args.checkpoint} (looked in {args.checkpoint.parent}). On a fresh "
                              f"clone, train one first: `{FIRST_TRAINING}` writes "
                              "artifacts/cpu/checkpoints/pretrained")
    import torch

    from roots_course.core.checkpoint import load_checkpoint
    from roots_course.core.device import pick_device
    from roots_course.core.generate import beam_search, generate
    from roots_course.core.tokenizer_kinds import load_tokenizer

    device = pick_device(args.device)
    model, _, _ = load_checkpoint(args.checkpoint, device)
    tokenizer_path = args.tokenizer or args.checkpoint.parent.parent / "tokenizer.json"
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"{tokenizer_path} has {tokenizer.vocab_size} token ids but the model in "
                              f"{args.checkpoint} has {model.config.vocab_size}: they were not trained together; "
                              f"pass the tokenizer of that run with --tokenizer")
    prompt_ids = tokenizer.encode(args.prompt)
    if len(prompt_ids) > model.config.block_size:
        print(f"note: the prompt has {len(prompt_ids)} tokens and the model's context {model.config.block_size}; "
              f"it continues from the last {model.config.block_size}", file=sys.stderr)
    if args.beam_width:
        new_ids = beam_search(model, prompt_ids, args.max_new_tokens, beam_width=args.beam_width)
    else:
        new_ids = generate(model, prompt_ids, args.max_new_tokens, greedy=args.greedy,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           repetition_penalty=args.repetition_penalty,
                           generator=torch.Generator().manual_seed(args.seed))
    print(args.prompt + tokenizer.decode(new_ids))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from roots_course.interop.export import export_checkpoint

    report = export_checkpoint(args.checkpoint, args.out, args.tokenizer)
    print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from roots_course.store.integrity import check_tree

    manifest = args.dir / "manifest.json"
    if not args.dir.is_dir():
        print(f"{args.dir}: no such folder (a profile's artifact folder is artifacts/PROFILE, e.g. artifacts/cpu)")
        return 1
    if not manifest.is_file():
        print(f"{args.dir}: no manifest here ({manifest.name} is missing): nothing was recorded in this folder. Give "
              "a profile's artifact folder after a run, e.g. artifacts/cpu")
        return 1
    problems = check_tree(args.dir)
    if len(problems) == 1 and "no checksums recorded" in problems[0]:
        print(f"{manifest}: a manifest without checksums: the run that wrote it recorded none, so there is nothing "
              "to check against. Run the course once more (python -m pipelines run) to record them")
        return 1
    for line in problems:
        print(line)
    if not problems:
        print(f"every artifact recorded in {args.dir / 'manifest.json'} is intact")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from roots_course.errors import RootsError

    try:
        if args.command == "doctor":
            from roots_course.course.doctor import main as doctor
            return doctor()
        if args.command == "train":
            return cmd_train(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "verify":
            return cmd_verify(args)
        return cmd_sample(args)
    except RootsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
