"""Prefect flows that run the ROOTS chapter notebooks with papermill and publish the book.

    python -m pipelines run --profile cpu        # regenerate every chapter, then build the book
    python -m pipelines serve                    # serve the deployments against a Prefect server

Modules, one concept each: ``chapters`` (which notebooks exist and what each depends on),
``parameters`` (checking a run's parameters before any work), ``execute`` (one notebook through
papermill), ``cache`` (when a chapter can be skipped), ``manifest`` (a run's provenance),
``publish`` (stamping and copying executed notebooks into the book, then building it),
``flows`` (the Prefect flows and tasks) and ``deployments`` (what ``serve`` offers).
"""

from pipelines.settings import keep_prefect_local

keep_prefect_local()   # before any module of this package imports prefect
