"""roots_course: the library every ROOTS chapter imports.

The map, from top to bottom; a package may import those below it, never one above:

    __main__         the command line (``python -m roots_course``); may import anything
    interop          the appendix: export to Hugging Face ``transformers``; may import every chapter
    representation, optimization, output, tasks, society   one package per chapter (studies, figures,
                     exercises), in chapter order: a chapter may import an earlier one
    course           profiles, the shared pretrained run, chapter set-up, exercise checks, figure helpers
    core             the GPT itself: tokenizers, attention, model, training, generation (read this first)
    store            files on disk: atomic writes, checksums, locks
    errors, _offline the base: the course's exceptions and the environment set before torch loads

It knows nothing of Prefect or papermill; the pipelines import it, never the other way round.
``tests/test_layout.py`` checks these rules on the source.
"""

import warnings

from roots_course._offline import choose_wait_policy, keep_caches_local

__version__ = "0.1.0"

keep_caches_local()
# How idle OpenMP threads wait (spin or sleep) is chosen from the machine's load, cores and threads; the
# runtime reads it once, when torch starts its thread pool, which is why it happens here, before any torch
# import. roots_course._offline.choose_wait_policy says why; describe(device) prints it.
choose_wait_policy()

# Libraries we import (datasets, transformers) load tqdm.auto, which in a notebook without ipywidgets
# warns that it falls back to text progress bars. The text bars are what we want; the warning would
# only clutter every published chapter.
warnings.filterwarnings("ignore", message="IProgress not found", category=Warning)
