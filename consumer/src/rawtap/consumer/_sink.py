"""The Sink protocol every store implements, and opening one from a URL."""

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from rawtap.shared import ConfigError, RawtapError, Record


class SinkError(RawtapError):
    """The sink could not commit or read; the message says what to check.

    The worker treats it as transient: nothing is acknowledged, it backs off
    and retries the same entries.
    """


@runtime_checkable
class Sink(Protocol):
    """Where records are committed. Implementations: SqliteSink (PostgresSink to come).

    ``write`` commits a batch in one transaction and is idempotent on
    ``record_id``: writing the same record twice stores one row.
    """

    def write(self, records: Sequence[Record], persisted_at_ns: int) -> int:
        """Commit ``records`` atomically; return how many were new."""
        ...

    def get(self, record_id: str) -> Record | None:
        """The stored record with this id, if any."""
        ...

    def count(self, producer_id: str | None = None) -> int:
        """How many records are stored (of one producer, if given)."""
        ...

    def iter_stored(self, producer_id: str | None = None) -> Iterator[tuple[Record, int]]:
        """Stored records (of one producer, if given) and ``persisted_at_ns``, oldest first."""
        ...

    def close(self) -> None:
        """Release the connection; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_sink(url: str) -> Sink:
    """Open the sink a URL names: ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``."""
    if url.startswith("sqlite://"):
        from rawtap.consumer._sqlite import SqliteSink

        return SqliteSink.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the PostgreSQL sink is not in this release yet; use sqlite:///path.db")
    raise ConfigError(f"unknown sink URL {url!r}; expected sqlite:///path.db")
