"""Shared test setup: import roots_course first, so that its environment settings (caches inside the
project, hubs offline, passive OpenMP waiting) are in place before anything loads torch."""

import roots_course  # noqa: F401
