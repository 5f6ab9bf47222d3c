"""The errors roots_course raises, so callers can tell bad input from bugs.

Every message names the offending thing: the file, the key, the value, and what was expected.
"""


class RootsError(Exception):
    """Base class of every error the course raises on purpose."""


class ConfigError(RootsError, ValueError):
    """A profile, key or value in the configuration is unknown or invalid."""


class DataError(RootsError, ValueError):
    """A corpus is empty, unreadable, not UTF-8, or cannot be fetched offline."""


class CheckpointError(RootsError, ValueError):
    """A saved file is missing, truncated, altered, or does not match the model."""


class ExportError(RootsError, ValueError):
    """A model or tokenizer cannot be expressed exactly in another library's format."""


class BusyError(RootsError, RuntimeError):
    """Another process (or thread) holds the lock on what this one would write."""
