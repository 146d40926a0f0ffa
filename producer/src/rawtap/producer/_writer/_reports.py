"""Producer reports: how many records this producer accepted and which it dropped, to the workers.

Reports are cumulative (``next_seq`` and every dropped range so far), so a
copy that is lost or skipped loses nothing: they go to every shard that takes
records now, else one copy to the journal, whose replay sends it to every
shard. Drops of another producer's journaled records are reported on its
behalf.
"""

import time

from rawtap.producer._buffer import RecordBuffer
from rawtap.producer._journal import Entry
from rawtap.producer._ledger import Ledger
from rawtap.producer._writer._backpressure import Backpressure
from rawtap.producer._writer._link import RedisLink
from rawtap.producer._writer._spill import Spill
from rawtap.shared import ProducerReport, ProducerSettings, encode_report


class Reporter:
    """Sends this producer's reports (writer thread only)."""

    def __init__(
        self,
        settings: ProducerSettings,
        producer_id: str,
        ledger: Ledger,
        buffer: RecordBuffer,
        link: RedisLink,
        backpressure: Backpressure,
        spill: Spill | None,
    ) -> None:
        self._settings = settings
        self._producer_id = producer_id
        self._ledger = ledger
        self._buffer = buffer
        self._link = link
        self._backpressure = backpressure
        self._spill = spill
        self.due_at = time.monotonic() + settings.report_interval_s
        """When the next periodic report is due (``time.monotonic()``)."""
        self._reported: tuple[int, int] = (0, 0)

    def report(self, *, final: bool = False) -> None:
        """Send a report if anything changed since the last one (always when ``final``)."""
        self.due_at = time.monotonic() + self._settings.report_interval_s
        ledger = self._ledger
        accepted = self._buffer.accepted
        state = (accepted, ledger.dropped_total())
        if state == self._reported and not final:
            return
        if accepted == 0 and not ledger.foreign_drops():
            return
        # Drops first: every seq dropped by then is below the next_seq read after it,
        # as workers require (a report with a range beyond next_seq is refused).
        dropped = ledger.drop_ranges()
        entries = [
            encode_report(
                ProducerReport(
                    producer_id=self._producer_id,
                    next_seq=self._buffer.next_seq,
                    dropped=dropped,
                    at_ns=time.time_ns(),
                    final=final,
                )
            )
        ]
        entries += [
            encode_report(
                ProducerReport(
                    producer_id=pid,
                    next_seq=max(r[1] for r in ranges) + 1,
                    dropped={"journal_overflow": ranges},
                    at_ns=time.time_ns(),
                )
            )
            for pid, ranges in ledger.foreign_drops().items()
        ]
        if not self._send_or_spill(entries):
            return
        self._reported = state
        ledger.foreign_reported()

    def _send_or_spill(self, entries: list[Entry]) -> bool:
        """Send control entries to every shard that takes records now, else to the journal."""
        shards = range(len(self._link.streams))
        spill = self._spill
        targets = list(shards) if spill is None else [k for k in shards if self._backpressure.ok(k)]
        if targets:
            streams = self._link.streams
            try:
                self._link.xadd([(streams[k], e) for k in targets for e in entries])
            except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
                if spill is None:
                    return False
                self._link.enter_outage(e, 0)
            else:
                for k in targets:
                    self._backpressure.spend(k, len(entries))
                return True
        if spill is None:
            return False
        return spill.append_control(entries)
