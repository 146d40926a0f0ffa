"""The exception tree of rawtap.shared (drawn in the package docstring)."""


class RawtapError(Exception):
    """Base of every error rawtap raises on purpose."""


class ConfigError(RawtapError, ValueError):
    """A setting is missing or invalid; the message names it and the accepted values."""


class CodecError(RawtapError, ValueError):
    """A stream entry cannot be decoded into a :class:`~rawtap.shared.Record`.

    The worker dead-letters such entries; the message says what was wrong.
    """


class EntryError(CodecError):
    """A stream entry the worker refuses, and whom it came from as far as its envelope says.

    ``producer_id`` and ``seq`` (None when the envelope does not name them) let
    the dead letter be accounted to its producer without parsing the entry again.
    """

    def __init__(self, message: str, producer_id: str | None = None, seq: int | None = None):
        super().__init__(message)
        self.producer_id = producer_id
        self.seq = seq
