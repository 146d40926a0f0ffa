"""One batch, from entries read to entries acknowledged.

    triage        decode each entry once; records, reports, dead letters, trimmed ids
      → derive    the records' fields (never raises)
      → commit    the records, bisecting what the sink refuses
      → ledger    dead letters, reports, trimmed ids
      → XADD      the dead letters, to the dead-letter stream
      → XACK      everything handled, only after the commits
      → telemetry one CommittedBatch value, after XACK

A crash anywhere before XACK leaves the entries pending, to be read again.
"""

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from rawtap.consumer.derivation import Derived, derive_all
from rawtap.consumer.store import Accounting, Sink
from rawtap.consumer.telemetry import CommittedBatch, WorkerTelemetry
from rawtap.consumer.worker._commit import Committer
from rawtap.consumer.worker._dead_letters import dead_letter_fields
from rawtap.consumer.worker._stats import WorkerStats
from rawtap.consumer.worker._triage import Entry, Letter, letter, triage
from rawtap.shared import Record, WorkerSettings

if TYPE_CHECKING:
    from rawtap.shared import RedisClient

logger = logging.getLogger(__name__)


class BatchHandler:
    """Handles the batches of one worker: its settings, counters, committer and telemetry."""

    def __init__(
        self,
        settings: WorkerSettings,
        dead_letter_stream: str,
        stats: WorkerStats,
        committer: Committer,
        telemetry: WorkerTelemetry,
    ) -> None:
        self._settings = settings
        self._dead_letter_stream = dead_letter_stream
        self._stats = stats
        self._committer = committer
        self._telemetry = telemetry

    def handle(
        self,
        client: "RedisClient",
        sink: Sink,
        stream: str,
        entries: Sequence[Entry],
        *,
        recovered: bool,
    ) -> None:
        """Store, account, dead-letter and acknowledge ``entries``; ``recovered``: read again."""
        started_ns = time.time_ns()
        stats = self._stats
        stats.batches += 1
        stats.read += len(entries)
        deliveries = self._deliveries(client, stream, entries) if recovered else {}
        now = time.time_ns()
        sorted_ = triage(stream, entries, deliveries, self._settings.max_deliveries, now)
        records = [record for _, record in sorted_.records]
        # Derivation never raises; a body no parser can read is counted and stored raw.
        # The request's model is read for telemetry only (gen_ai.request.model).
        derived = derive_all(records, with_request_model=self._telemetry.enabled)
        stats.derive_failures += sum(d.failed for d in derived)
        commit_started = time.perf_counter()
        refused = self._committer.commit(sink, records, derived, sorted_.envelopes)
        commit_s = time.perf_counter() - commit_started
        letters = sorted_.letters
        if refused:
            by_record = {id(rec): entry_id for entry_id, rec in sorted_.records}
            fields_of = dict(entries)
            for rec, error in refused:
                entry_id = by_record[id(rec)]
                fields = fields_of[entry_id]
                assert fields is not None
                delivered = deliveries.get(entry_id, 1)
                # The record was decoded once already: it names its producer and seq.
                who = rec.producer_id, rec.seq
                letters.append(letter(stream, entry_id, fields, error, delivered, now, *who))
        accounting = Accounting(
            stream=stream,
            reports=sorted_.reports,
            dead=[dead for _, _, dead in letters],
            trimmed=sorted_.trimmed,
        )
        if accounting:
            self._committer.write_ledger(sink, accounting)
        if letters:
            self._send_dead_letters(client, letters)
        client.xack(stream, self._settings.group, *[entry_id for entry_id, _ in entries])
        stats.reports += len(accounting.reports)
        stats.dead_lettered += len(letters)
        stats.trimmed_lost += len(accounting.trimmed)
        stats.acked += len(entries)
        if self._telemetry.enabled:  # after XACK; never raises
            self._telemetry.batch_committed(
                self._committed(
                    stream, len(entries), records, derived, refused, started_ns, commit_s
                )
            )

    def _deliveries(
        self, client: "RedisClient", stream: str, entries: Sequence[Entry]
    ) -> dict[bytes, int]:
        """How often each entry read again was delivered (XPENDING over the batch's range)."""
        rows = client.xpending_range(
            stream,
            self._settings.group,
            min=entries[0][0],
            max=entries[-1][0],
            # Our pending list may hold more ids between these two than the batch has.
            count=max(len(entries) * 4, 10_000),
            consumername=self._settings.consumer,
        )
        return {cast(bytes, row["message_id"]): int(row["times_delivered"]) for row in rows}

    def _send_dead_letters(self, client: "RedisClient", letters: Sequence[Letter]) -> None:
        # Acknowledged only once Redis took them: an XADD refused (out of memory)
        # must not leave an acknowledged entry nowhere.
        pipe = client.pipeline(transaction=False)
        for entry_id, fields, dead in letters:
            logger.warning("entry %s dead-lettered: %s", entry_id.decode(), dead.error)
            pipe.xadd(
                self._dead_letter_stream,
                dead_letter_fields(dead, fields, self._settings.group, self._settings.consumer),  # type: ignore[arg-type]
                maxlen=self._settings.dead_letter_maxlen,
                approximate=True,
            )
        pipe.execute()

    def _committed(
        self,
        stream: str,
        entries: int,
        records: list[Record],
        derived: list[Derived],
        refused: list[tuple[Record, str]],
        started_ns: int,
        commit_s: float,
    ) -> CommittedBatch:
        """What telemetry learns of a handled batch: the records stored, with their fields."""
        refused_ids = {id(rec) for rec, _ in refused}
        return CommittedBatch(
            stream=stream,
            group=self._settings.group,
            consumer=self._settings.consumer,
            entries=entries,
            stored=tuple(
                (rec, fields)
                for rec, fields in zip(records, derived, strict=True)
                if id(rec) not in refused_ids
            ),
            refused=len(refused),
            started_ns=started_ns,
            commit_s=commit_s if records else None,
        )
