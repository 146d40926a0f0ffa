"""The worker's committer with sinks of both protocols: envelopes go only where taken."""

import threading
from collections.abc import Sequence
from typing import Any, cast

from rawtap.consumer.derivation import Derived
from rawtap.consumer.store import Sink
from rawtap.consumer.worker._commit import Committer, takes_envelopes
from rawtap.consumer.worker._stats import WorkerStats
from rawtap.shared import Record, encode_entry
from tests.support.records import make_record


class _EarlierSink:
    """A custom sink written to the protocol before ``envelopes=`` existed."""

    def __init__(self) -> None:
        self.written: list[Record] = []

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
    ) -> int:
        self.written.extend(records)
        return len(records)


class _CurrentSink(_EarlierSink):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[bytes] = []

    def write(
        self,
        records: Sequence[Record],
        persisted_at_ns: int,
        derived: Sequence[Derived | None] | None = None,
        *,
        envelopes: Sequence[bytes] | None = None,
    ) -> int:
        self.envelopes.extend(envelopes or ())
        return super().write(records, persisted_at_ns, derived)


def _commit(sink: Any) -> tuple[list[tuple[Record, str]], WorkerStats, list[bytes]]:
    records = [make_record() for _ in range(3)]
    envelopes = [encode_entry(r)[b"env"] for r in records]
    stats = WorkerStats()
    refused = Committer(stats, threading.Event()).commit(
        cast(Sink, sink), records, [Derived() for _ in records], envelopes
    )
    return refused, stats, envelopes


def test_a_sink_of_the_earlier_protocol_still_stores_every_record() -> None:
    sink = _EarlierSink()
    refused, stats, _ = _commit(sink)
    assert refused == []  # not dead-lettered as "unexpected keyword argument"
    assert stats.stored == 3
    assert len(sink.written) == 3


def test_a_current_sink_gets_the_envelopes_as_received() -> None:
    sink = _CurrentSink()
    refused, stats, envelopes = _commit(sink)
    assert (refused, stats.stored) == ([], 3)
    assert sink.envelopes == envelopes


def test_which_sinks_take_envelopes() -> None:
    class Kwargs:
        def write(self, *args: object, **kwargs: object) -> int:
            return 0

    assert takes_envelopes(_CurrentSink)
    assert takes_envelopes(Kwargs)
    assert not takes_envelopes(_EarlierSink)
