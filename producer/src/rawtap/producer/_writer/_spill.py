"""The writer's side of the spill journal: what cannot go to Redis now goes to disk, and back.

Records are spilled when Redis fails or their shard is backpressured, and
replayed, oldest segment first, once Redis answers and every shard's backlog
is back under the low watermark. When the journal is full (``overflow``
policy) or the disk fails they are dropped and counted (by ``seq`` range and
reason, reported to the workers).
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from rawtap.producer._journal import (
    EVERY_SHARD,
    Entry,
    JournalFull,
    Route,
    Segment,
    SpillJournal,
    encode_frame,
    read_frames,
)
from rawtap.producer._ledger import Ledger
from rawtap.producer._serialize import SerializedRecord
from rawtap.producer._writer._backpressure import Backpressure
from rawtap.producer._writer._link import RedisLink
from rawtap.shared import ENTRY_ENVELOPE, ENTRY_KIND, LogOnce, ProducerSettings, shard_for

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

REPLAY_WAIT_S = 0.05
"""How long the writer waits between looks while a journal waits to be replayed."""

Frame = tuple[int, Route | None, Entry]
"""``(seq, route, entry)`` as :func:`rawtap.producer._journal.read_frames` yields them."""


def journal_dir(settings: ProducerSettings) -> Path | None:
    """The spill directory for this Redis and stream prefix, or None when spilling is off."""
    if not settings.spill_dir:
        return None
    target = hashlib.sha256(settings.redis_url.encode()).hexdigest()[:10]
    return Path(settings.spill_dir) / f"{settings.stream_prefix}-{target}"


class Spill:
    """Appends to, drops from and replays one producer's journal (writer thread only)."""

    def __init__(
        self,
        journal: SpillJournal,
        settings: ProducerSettings,
        producer_id: str,
        ledger: Ledger,
        link: RedisLink,
        backpressure: Backpressure,
        shards: int,
    ) -> None:
        self.journal = journal
        self._settings = settings
        self._producer_id = producer_id
        self._ledger = ledger
        self._link = link
        self._backpressure = backpressure
        self._shards = shards
        self._replaying: tuple[Segment, Iterator[Frame]] | None = None

    def fds(self) -> tuple[int, ...]:
        """Descriptors held (a segment being replayed), for a forked child."""
        return () if self._replaying is None else (self._replaying[0].fd,)

    # -- in ------------------------------------------------------------------------

    def spill(self, records: list[SerializedRecord]) -> None:
        """Journal ``records``; what does not fit is dropped and counted."""
        frames = [encode_frame(r.seq, r.entry, Route(session_id=r.session_id)) for r in records]
        while True:
            try:
                self.journal.append(frames)
            except JournalFull:
                if self._settings.overflow == "drop_oldest" and self._drop_oldest_segment():
                    continue
                # Keep what still fits: the oldest of the batch (drop_newest), or, with
                # drop_oldest and nothing left to delete, the newest of it.
                newest = self._settings.overflow == "drop_oldest"
                order = frames[::-1] if newest else frames
                room, fit = self.journal.room(), 0
                while fit < len(order) and room >= len(order[fit]):
                    room -= len(order[fit])
                    fit += 1
                kept = records[len(records) - fit :] if newest else records[:fit]
                lost = records[: len(records) - fit] if newest else records[fit:]
                if kept:
                    self.spill(kept)
                self._ledger.drop("journal_full", [r.seq for r in lost], "spill journal full")
                return
            except OSError as e:
                _log_once.warning("spill", "rawtap: cannot write the spill journal (%s)", e)
                self._ledger.drop("spill_failed", [r.seq for r in records], str(e))
                return
            self._ledger.add_spilled(len(records))
            return

    def append_control(self, entries: list[Entry]) -> bool:
        """Journal one copy of control entries (its replay sends it to every shard)."""
        try:
            self.journal.append([encode_frame(-1, e, EVERY_SHARD) for e in entries])
        except (JournalFull, OSError):
            return False
        return True

    def _drop_oldest_segment(self) -> bool:
        self.stop_replay(delete=False)
        segment = self.journal.claim_oldest(include_active=True)
        if segment is None:
            return False
        seqs = [seq for seq, _, _ in read_frames(segment.path) if seq >= 0]
        self.journal.finished(segment, delete=True)
        if segment.producer_id == self._producer_id:
            self._ledger.drop("journal_overflow", seqs, "oldest journal segment dropped")
        elif seqs:
            # Another (maybe dead) producer's records: report the loss on its behalf.
            self._ledger.foreign_drop(segment.producer_id, seqs)
        return True

    # -- out -----------------------------------------------------------------------

    def replay_step(self, *, include_active: bool) -> bool:
        """Send one batch from the journal; False when there was nothing to replay.

        ``include_active``: the segment being appended to may be replayed too
        (nothing is buffered, so nothing newer is about to join it).
        """
        if self._replaying is None:
            if self.journal.is_empty():
                return False
            segment = self.journal.claim_oldest(include_active=include_active)
            if segment is None:
                return False
            self._replaying = (segment, read_frames(segment.path))
        segment, frames = self._replaying
        batch = _take(frames, self._settings.send_batch_size)
        if not batch:
            self.stop_replay(delete=True)
            return True
        # Each record to its shard (by the current shard count); a report to every shard.
        routed = [
            (shard, entry)
            for seq, route, entry in batch
            for shard in (
                range(self._shards)
                if _is_control(route, entry)
                else (self._frame_shard(seq, route, entry),)
            )
        ]
        streams = self._link.streams
        try:
            self._link.xadd([(streams[shard], entry) for shard, entry in routed])
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self.stop_replay(delete=False)  # replayed again later, from its start
            self._link.enter_outage(e, 0)
            return False
        for shard, _ in routed:
            self._backpressure.spend(shard, 1)
        self._ledger.add_replayed(sum(1 for _, r, e in batch if not _is_control(r, e)))
        return True

    def replay_before_exit(self, deadline: float, buffer_empty: Callable[[], bool]) -> None:
        """On close, empty the journal into Redis while time is left and Redis can take it.

        An unreachable Redis ends this at once (the records are safe on disk and
        the next run replays them); lagging consumers are waited for until the
        close ``deadline``, since sending past the cap would let MAXLEN trim.
        """
        while not self.journal.is_empty() and not self._link.outage:
            now = time.monotonic()
            if now >= deadline:
                return
            self._backpressure.maybe_check(now)
            if self._backpressure.shards:
                time.sleep(min(REPLAY_WAIT_S, max(0.0, deadline - now)))
            elif not self.replay_step(include_active=buffer_empty()):
                return

    def _frame_shard(self, seq: int, route: Route | None, entry: Entry) -> int:
        """The shard of a journaled record: from its frame's route, or from its envelope.

        Only version 1 frames (written before frames carried the route) need the envelope.
        """
        if self._shards == 1:
            return 0
        if route is not None:
            session = route.session_id
        else:
            try:
                envelope = orjson.loads(entry.get(ENTRY_ENVELOPE, b"{}"))
                session = envelope.get("session_id") if isinstance(envelope, dict) else None
            except orjson.JSONDecodeError:
                session = None
        return shard_for(session, max(seq, 0), self._shards)

    def stop_replay(self, *, delete: bool) -> None:
        """Let go of the segment being replayed (deleted once it was all sent)."""
        if self._replaying is not None:
            close = getattr(self._replaying[1], "close", None)
            if close is not None:
                close()  # the segment's file, now rather than at garbage collection
            self.journal.finished(self._replaying[0], delete=delete)
        self._replaying = None


def _is_control(route: Route | None, entry: Entry) -> bool:
    """A control entry (a report, sent to every shard), not a record."""
    return route.every_shard if route is not None else ENTRY_KIND in entry


def _take(frames: Iterator[Frame], n: int) -> list[Frame]:
    out = []
    for frame in frames:
        out.append(frame)
        if len(out) >= n:
            break
    return out
