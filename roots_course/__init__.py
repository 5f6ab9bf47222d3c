"""roots_course: the library every ROOTS chapter imports.

It knows nothing of Prefect or papermill; the pipelines import it, never the other way round.
"""

from roots_course._offline import keep_caches_local

__version__ = "0.1.0"

keep_caches_local()
