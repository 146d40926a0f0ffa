"""Sorting one batch of stream entries, without IO: what to store, account and dead-letter.

:func:`triage` takes the entries as XREADGROUP or XAUTOCLAIM returned them,
how often each was delivered, and the clock; it returns a :class:`Triage`
value. No Redis, no sink: the worker does the IO around it, so every branch
here is tested with plain data (tests/unit/test_worker_triage.py).

Each entry is decoded at most once (:func:`rawtap.shared.decode_entry`, the
one validation a record gets on ingress); a refused one's dead letter takes the
producer and seq from that same decode, never from a second parse.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rawtap.consumer.store import DeadLetter
from rawtap.shared import (
    ENTRY_ENVELOPE,
    ENTRY_RECORD_ID,
    CodecError,
    EntryError,
    ProducerReport,
    Record,
    decode_entry,
    decode_report,
    entry_identity,
    is_report,
)

Entry = tuple[bytes, dict[bytes, bytes] | None]
"""A stream entry as redis-py returns it: its id and fields (None once MAXLEN trimmed it)."""


class Letter(NamedTuple):
    """An entry to dead-letter: its id, its fields as they arrived, and the ledger row."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    dead: DeadLetter


@dataclass(slots=True)
class Triage:
    """One batch, sorted: what the worker stores, accounts and dead-letters."""

    records: list[tuple[bytes, Record]] = field(default_factory=list)
    """Valid records with their entry ids, in stream order."""
    envelopes: list[bytes] = field(default_factory=list)
    """Each record's envelope as it arrived (validated by its decoding), stored as is."""
    reports: list[ProducerReport] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    """Entries that can never be stored: over-delivered, undecodable, invalid."""
    trimmed: list[str] = field(default_factory=list)
    """Pending ids whose entry MAXLEN trimmed away: the data is gone."""


def triage(
    stream: str,
    entries: Sequence[Entry],
    deliveries: Mapping[bytes, int],
    max_deliveries: int,
    now_ns: int,
) -> Triage:
    """Sort ``entries`` (read from ``stream``); an id absent from ``deliveries`` was delivered once.

    An entry delivered more than ``max_deliveries`` times is dead-lettered
    without being decoded: decoding it is what may have killed the worker before.
    """
    out = Triage()
    for entry_id, fields in entries:
        if not fields:
            out.trimmed.append(entry_id.decode())
            continue
        delivered = deliveries.get(entry_id, 1)
        if delivered > max_deliveries:
            error = f"delivered {delivered} times without being committed"
            producer_id, seq = entry_identity(fields)
            out.letters.append(
                letter(stream, entry_id, fields, error, delivered, now_ns, producer_id, seq)
            )
            continue
        if is_report(fields):
            try:
                out.reports.append(decode_report(fields))
            except CodecError as e:
                # A report names its producer, never a seq: reconciliation counts it there.
                producer_id, seq = entry_identity(fields)
                out.letters.append(
                    letter(stream, entry_id, fields, str(e), delivered, now_ns, producer_id, seq)
                )
            continue
        try:
            out.records.append((entry_id, decode_entry(fields)))
            out.envelopes.append(fields[ENTRY_ENVELOPE])
        except EntryError as e:
            out.letters.append(
                letter(stream, entry_id, fields, str(e), delivered, now_ns, e.producer_id, e.seq)
            )
    return out


def letter(
    stream: str,
    entry_id: bytes,
    fields: dict[bytes, bytes],
    error: str,
    deliveries: int,
    now_ns: int,
    producer_id: str | None,
    seq: int | None,
) -> Letter:
    """The dead letter for one entry; ``producer_id`` and ``seq`` as far as the entry named them."""
    record_id = fields.get(ENTRY_RECORD_ID)
    dead = DeadLetter(
        stream=stream,
        entry_id=entry_id.decode(),
        error=error,
        deliveries=deliveries,
        dead_at_ns=now_ns,
        record_id=record_id.decode("utf-8", "replace") if record_id else None,
        producer_id=producer_id,
        seq=seq,
    )
    return Letter(entry_id, fields, dead)
