"""roots_course: the library every ROOTS chapter imports.

It knows nothing of Prefect or papermill; the pipelines import it, never the other way round.
"""

import os
import warnings

from roots_course._offline import keep_caches_local

__version__ = "0.1.0"

keep_caches_local()
# OpenMP threads that wait by spinning steal the core from each other when the machine is busy (a step
# measured 6-8x slower on a loaded 2-core box); passive waiting costs little when it is idle. It must be
# set before torch starts its thread pool, which is why it lives here, before any torch import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Libraries we import (datasets, transformers) load tqdm.auto, which in a notebook without ipywidgets
# warns that it falls back to text progress bars. The text bars are what we want; the warning would
# only clutter every published chapter.
warnings.filterwarnings("ignore", message="IProgress not found", category=Warning)
