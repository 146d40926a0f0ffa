"""The exception tree of rawtap.shared (drawn in the package docstring)."""


class RawtapError(Exception):
    """Base of every error rawtap raises on purpose."""


class ConfigError(RawtapError, ValueError):
    """A setting is missing or invalid; the message names it and the accepted values."""


class CodecError(RawtapError, ValueError):
    """A stream entry cannot be decoded into a :class:`~rawtap.shared.Record`.

    The worker dead-letters such entries; the message says what was wrong.
    """
