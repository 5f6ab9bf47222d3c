"""How much the pipeline's cache saves: a first ``regenerate`` against a second one with nothing
changed, and a third after one chapter's notebook changed, printed as JSON.

    python benchmarks/pipeline_cache.py [--profile smoke] [--chapters 1 2] [--artifacts-dir DIR] [--no-publish]

By default the artifacts go to a fresh temporary folder (so the first run is a cold one) and the book
is published into a temporary copy of book/. Prefect starts one temporary server for all three runs
unless $PREFECT_API_URL names one; its start-up is not counted. The times are the flow calls' wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

import pipelines  # noqa: F401  (Prefect's environment first)
from pipelines.settings import PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--chapters", type=int, nargs="+", default=None)
    parser.add_argument("--artifacts-dir", type=Path, default=None)
    parser.add_argument("--no-publish", action="store_true")
    args = parser.parse_args()

    from prefect import flow

    from pipelines.flows import regenerate

    @flow(name="warm-up")
    def warm_up() -> None:   # starts Prefect's temporary server, if one is needed, outside the timings
        return None

    warm_up()
    with tempfile.TemporaryDirectory(prefix="roots-bench-") as tmp:
        tmp_path = Path(tmp)
        notebooks = tmp_path / "notebooks"
        shutil.copytree(PROJECT_ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".*"))
        book = tmp_path / "book"
        shutil.copytree(PROJECT_ROOT / "book", book, ignore=shutil.ignore_patterns("_build", ".*"))
        artifacts = args.artifacts_dir or tmp_path / "artifacts"
        kwargs = {"profile": args.profile, "chapters": args.chapters, "notebooks_dir": str(notebooks),
                  "artifacts_dir": str(artifacts), "book_dir": str(book), "publish": not args.no_publish}

        def timed() -> tuple[float, dict]:
            started = time.perf_counter()
            result = regenerate(**kwargs)
            return time.perf_counter() - started, result["chapters"]

        first_s, first = timed()
        second_s, second = timed()
        # change the last chapter run: a markdown cell at its end
        last = min(notebooks.glob(f"{max(int(n[:2]) for n in first):02d}_*.ipynb"))
        nb = nbformat.read(last, as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell("A change, to time a re-run of this chapter alone."))
        nbformat.write(nb, last)
        third_s, third = timed()

    print(json.dumps({
        "profile": args.profile, "publish": not args.no_publish,
        "first_s": round(first_s, 1), "second_s": round(second_s, 1),
        "second_over_first": round(second_s / first_s, 3),
        "changed_chapter": last.stem, "third_s": round(third_s, 1),
        "first": first, "second": second, "third": third,
    }, indent=2))


if __name__ == "__main__":
    main()
