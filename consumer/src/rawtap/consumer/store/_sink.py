"""The Sink and Store protocols every store implements, and the read-side types.

``Sink`` is what a worker needs (commit a batch idempotently, apply retention);
``Store`` adds what the read side needs (``rawtap list/show/export/replay/rederive``).
Both built-in sinks, :class:`SqliteSink` and :class:`PostgresSink`, are Stores.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store._accounting import Accounting, ProducerBalance
from rawtap.shared import CodecError, EndState, RawtapError, Record


class SinkError(RawtapError):
    """The sink could not commit or read; the message says what to check.

    ``transient`` errors (connection lost, database locked, disk full) make the
    worker back off and retry the same batch, acknowledging nothing. Other
    errors are the data's fault: the worker splits the batch to find the
    records the sink refuses and dead-letters them.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Which stored records to read; every field left None matches everything.

    Times are wall-clock ns (``started_at_ns``): ``since_ns`` inclusive, ``until_ns`` exclusive.
    ``status_min`` is inclusive and ``status_max`` exclusive (``400``/``500``: the 4xx);
    a record with no status (a transport error) matches neither bound.

    ``text`` searches the derived response text (its first 1,024 bytes, the stored
    preview; not the request): it is split into words, runs of letters and digits
    (anything else, ``_`` included, separates words and is never query syntax), and a
    record matches when, for every word, its text holds a word starting with it, case
    aside (``"rate lim"`` finds "Rate limited"); a word of one or two ASCII characters
    must be a whole word (``"id"`` does not find "idea"). SQLite also ignores diacritics
    ("cafe" finds "café"); PostgreSQL does not. A text of only spaces, or None, is no
    filter; a text with no word in it (``"!!"``) matches nothing.
    """

    session_id: str | None = None
    provider: str | None = None
    model: str | None = None
    status: int | None = None
    end_state: EndState | str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    producer_id: str | None = None
    service: str | None = None
    call_id: str | None = None
    record_id: str | None = None
    """One record (``rawtap replay/export --record``), by its whole id."""
    text: str | None = None
    status_min: int | None = None
    status_max: int | None = None
    stream: bool | None = None


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """One stored record as ``rawtap list`` shows it: the filter columns, no bodies."""

    record_id: str
    started_at_ns: int
    provider: str
    model: str | None
    status: int | None
    end_state: str
    stream: bool
    session_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    ended_ns: int | None
    body_size: int
    parse_error: str | None
    service: str | None
    method: str | None
    url: str | None
    call_id: str | None
    finish_reason: str | None
    ttft_ns: int | None


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The few columns of one record the console's overview charts aggregate."""

    started_at_ns: int
    provider: str
    model: str | None
    status: int | None
    end_state: str
    ended_ns: int | None
    """Duration of the exchange (ns from its start), if it ended."""
    ttft_ns: int | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored: the raw record, its derived fields (None if never derived), when."""

    record: Record
    derived: Derived | None
    persisted_at_ns: int


OnUnreadable = Callable[[str, CodecError], None]
"""Called with the record id and the error for a stored row that is not a valid record."""


@runtime_checkable
class Sink(Protocol):
    """Where a worker commits records. Implementations: SqliteSink, PostgresSink.

    ``write`` commits a batch in one transaction and is idempotent on
    ``record_id``: writing the same record twice stores one row.
    """

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
        *,
        envelopes: Sequence[bytes] | None = None,
    ) -> int:
        """Commit ``records`` (and their derived fields, in the same order) atomically.

        ``envelopes``, one per record, are the envelopes as they arrived in the stream
        entries the records were decoded from (validated by the decoding): stored as
        they are instead of encoding the records again. Returns how many were new.
        """
        ...

    def write_accounting(self, accounting: Accounting) -> None:
        """Commit dead letters, producer reports and trimmed ids atomically (idempotent)."""
        ...

    def reconcile(self) -> list[ProducerBalance]:
        """Per-producer balances (see :mod:`rawtap.consumer.store._reconcile`)."""
        ...

    def ledger_counts(self) -> dict[str, int]:
        """``dead_lettered`` (not stored later) and ``trimmed`` totals."""
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

    def purge(self, before_ns: int) -> int:
        """Delete every record that started before ``before_ns`` (wall clock); return how many."""
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


@runtime_checkable
class Store(Sink, Protocol):
    """A Sink that can also be read and searched: what the ``rawtap`` read commands use."""

    def get_stored(self, record_id: str) -> StoredRecord | None:
        """The record, its derived fields and its persist time, if stored.

        Raises :class:`~rawtap.shared.CodecError` when the row is not a valid record
        (corrupted, or written by a newer schema version).
        """
        ...

    def find_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` stored record ids starting with ``prefix``."""
        ...

    def summaries(
        self,
        query: RecordQuery,
        limit: int = 50,
        newest_first: bool = True,
        after: tuple[int, str] | None = None,
    ) -> list[RecordSummary]:
        """The filter columns of up to ``limit`` matching records, by start time then id.

        ``after`` is ``(started_at_ns, record_id)`` of the last row of the previous
        page: this page starts strictly past it, in the same order (keyset paging).
        """
        ...

    def call_facts(self, query: RecordQuery, limit: int = 20_000) -> list[CallFacts]:
        """The newest ``limit`` (at most) matching records' :class:`CallFacts`, newest first."""
        ...

    def facets(self, limit: int = 200) -> dict[str, list[str]]:
        """The distinct ``provider``, ``model``, ``service`` and ``end_state`` values stored.

        Each list is sorted and holds at most ``limit`` values (the first ones).
        """
        ...

    def count_matching(self, query: RecordQuery) -> int:
        """How many records match ``query``."""
        ...

    def iter_records(
        self,
        query: RecordQuery,
        *,
        batch_size: int = 500,
        on_unreadable: OnUnreadable | None = None,
    ) -> Iterator[StoredRecord]:
        """Matching records, oldest first, read in pages of ``batch_size``.

        A row that is not a valid record raises :class:`~rawtap.shared.CodecError`,
        or is passed to ``on_unreadable`` and skipped when that is given. No
        transaction or lock is held between pages, so the caller may write meanwhile.
        """
        ...

    def set_derived(self, items: Sequence[tuple[str, Derived]]) -> int:
        """Replace the derived fields of the given record ids; return how many rows changed."""
        ...
