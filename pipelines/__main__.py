"""The pipeline's command line.

    python -m pipelines run --profile P [--device D] [--seed S] [--chapters 1 2] [--no-publish]
                            [--book-dir DIR] [--notebooks-dir DIR] [--artifacts-dir DIR]
    python -m pipelines publish --profile P [--chapters 1 2] [--book-dir DIR] [--artifacts-dir DIR]
    python -m pipelines serve [--limit N] [--profiles smoke cpu gpu]

``run`` runs the ``regenerate`` flow in this process (Prefect starts a temporary server unless
$PREFECT_API_URL names one) and ends by printing where the built book is. It exits with 2 for a bad
parameter, 3 when the artifacts folder cannot be written or another run of the profile holds it,
and 1 when the run failed. ``serve`` serves the
deployments (regenerate/smoke|cpu|gpu and the sub-flows) against a running Prefect server.

Where the book goes: a ``cpu`` run publishes into ``book/`` (the committed book); a run of any other
profile into its own book, ``artifacts/<profile>/book/``, so trying the pipeline with ``smoke`` never
replaces a committed page. ``--book-dir book`` publishes into ``book/`` whatever the profile.

``publish`` republishes the last successful runs without running anything: after editing a chapter's
prose, citations or captions (not its code), or the book's own pages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pipelines  # noqa: F401  (keeps Prefect's home and results inside the project)

BOOK_DIR_HELP = ("the Jupyter Book folder to publish into (default: book/ for the cpu profile, "
                 "artifacts/<profile>/book/ for the others)")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="regenerate the chapters (and the book) in this process")
    run.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $ROOTS_PROFILE or cpu)")
    run.add_argument("--device", default=None, help="auto | cpu | cuda | mps (default: the profile's)")
    run.add_argument("--seed", type=_non_negative_int, default=None, help="random seed (default: the profile's)")
    run.add_argument("--chapters", type=_non_negative_int, nargs="+", default=None, metavar="N",
                     help="chapter numbers to run (default: every chapter with a notebook)")
    run.add_argument("--no-publish", action="store_true", help="do not copy into the book nor build it")
    run.add_argument("--book-dir", type=Path, default=None, help=BOOK_DIR_HELP)
    run.add_argument("--notebooks-dir", type=Path, default=None, help="chapter notebooks (default: notebooks/)")
    run.add_argument("--artifacts-dir", type=Path, default=None,
                     help="artifacts root; the profile's folder goes inside (default: artifacts/)")

    publish = commands.add_parser("publish", help="publish the last successful runs into the book, running nothing")
    publish.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $ROOTS_PROFILE or cpu)")
    publish.add_argument("--chapters", type=_non_negative_int, nargs="+", default=None, metavar="N",
                         help="chapter numbers to publish (default: every chapter with a notebook)")
    publish.add_argument("--book-dir", type=Path, default=None, help=BOOK_DIR_HELP)
    publish.add_argument("--notebooks-dir", type=Path, default=None, help="chapter notebooks (default: notebooks/)")
    publish.add_argument("--artifacts-dir", type=Path, default=None,
                         help="artifacts root; the profile's folder goes inside (default: artifacts/)")

    serve = commands.add_parser("serve", help="serve the deployments against a Prefect server")
    serve.add_argument("--limit", type=_non_negative_int, default=None, help="at most this many runs at once")
    serve.add_argument("--profiles", nargs="+", default=None, metavar="P",
                       help="serve the deployments of these profiles only (default: smoke cpu gpu)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.parameters import ParameterError, resolve

    def opt(path: Path | None) -> str | None:
        return str(path) if path is not None else None

    kwargs = {"profile": args.profile, "device": args.device, "seed": args.seed, "chapters": args.chapters,
              "notebooks_dir": opt(args.notebooks_dir), "artifacts_dir": opt(args.artifacts_dir),
              "book_dir": opt(args.book_dir)}
    try:
        params = resolve(**kwargs, require_book=not args.no_publish)   # fail before starting Prefect, not after
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from pipelines import storage
    from roots_course.errors import BusyError

    started = time.perf_counter()
    try:
        storage.check_writable(params.profile_dir)
        # the same lock the flow takes; held from here, a second run is refused before Prefect starts
        with storage.run_lock(params.profile_dir, params.profile.name):
            from pipelines.flows import regenerate
            result = regenerate(publish=not args.no_publish, **kwargs)
    except (storage.StorageError, BusyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001  (the flow's failure, told plainly)
        print(f"\nerror: the run failed: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started
    ran = [n for n, s in result["chapters"].items() if s == "ran"]
    cached = [n for n, s in result["chapters"].items() if s == "cached"]
    print(f"\nregenerate ({result['profile']}): ran {', '.join(ran) or 'nothing'}; "
          f"unchanged {', '.join(cached) or 'nothing'}; flow {result['wall_s']:.1f} s, command {wall:.1f} s")
    print(f"manifest: {result['manifest']}")
    if result.get("book"):
        print(f"The built book: {result['book']}")
    else:
        print("The book was not published (--no-publish).")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pipelines.parameters import ParameterError, resolve

    kwargs = {"profile": args.profile, "chapters": args.chapters,
              **{k: str(v) if v is not None else None for k, v in (
                  ("notebooks_dir", args.notebooks_dir), ("artifacts_dir", args.artifacts_dir),
                  ("book_dir", args.book_dir))}}
    try:
        resolve(kwargs["profile"], None, None, args.chapters, kwargs["notebooks_dir"], kwargs["artifacts_dir"],
                kwargs["book_dir"], require_book=True)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from pipelines.flows import publish_book

    try:
        index = publish_book(**kwargs)
    except Exception as exc:  # noqa: BLE001  (the flow's failure, told plainly)
        print(f"\nerror: publishing failed: {exc}", file=sys.stderr)
        return 1
    print(f"The built book: {index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "publish":
        return cmd_publish(args)
    from pipelines.deployments import PROFILES, serve
    unknown = [p for p in args.profiles or () if p not in PROFILES]
    if unknown:
        print(f"error: parameter 'profiles': unknown profile {unknown[0]!r}; allowed: {', '.join(PROFILES)}",
              file=sys.stderr)
        return 2
    serve(limit=args.limit, profiles=tuple(args.profiles or PROFILES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
