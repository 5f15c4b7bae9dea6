"""Exception types shared across the library; each message names the file or key at fault."""


class RagarDataError(Exception):
    """Base class of the errors this package raises on bad input."""


class SchemaError(RagarDataError):
    """A schema file, or data checked against a schema, is malformed."""


class AnnotationError(RagarDataError):
    """An annotation CSV has problems; ``problems`` lists them with line and column."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class ShardError(RagarDataError):
    """A shard file is truncated, tampered with, or does not match the shard schema."""


class ModelUnavailable(RagarDataError):
    """A pipeline backend cannot run here (weights file or optional package missing)."""


class VideoError(RagarDataError):
    """A video cannot be decoded or does not have the expected properties."""


class InputError(RagarDataError, ValueError):
    """An argument or a data value is out of its domain (a key, a shape, a range). Also a ValueError, so that
    callers catching ValueError keep working."""


class ConfigError(RagarDataError, ValueError):
    """A preset, config file, override or backend option is malformed; the message names the key. Also a
    ValueError, so that callers catching ValueError keep working."""
