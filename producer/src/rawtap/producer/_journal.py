"""SpillJournal: crash-safe, append-only segments on local disk.

When Redis is unreachable, too slow, or consumers lag towards the stream's
MAXLEN cap, the writer appends batches here instead of sending them, and
replays them (oldest segment first) once Redis and the consumers recover.

Layout: one directory per (Redis URL, stream prefix); each producer writes its
own segment files ``<producer_id>-<n>.seg`` and holds an ``flock`` on the one
it is appending to. A segment nobody holds a lock on (sealed by a live
producer, or left by a process that exited or crashed) may be replayed by any
producer using the same directory, so a restarted service delivers what an
earlier run left. Replaying may send an entry twice (a crash mid-replay); the
record id makes the sink idempotent.

Frame format, little-endian: ``u32 payload length, u32 crc32, i64 seq`` then
the payload. Version 2 frames (bit 31 of the length set) start the payload with
the entry's route, so a replay finds its shard without parsing the envelope:
``u8 tag`` (0: by seq, 1: by session, 2: every shard, a control entry), and
for tag 1 ``u32 length, session id``. Then, in both versions, ``u16 field
count`` and per field ``u16 key length, u32 value length, key, value``.
Version 1 frames (no route; written before this version) stay readable: their
route is None and the replay reads it from the envelope. A torn or corrupt
frame ends the segment: what follows it cannot be trusted, and the worker's
gap detection names those seqs.
"""

import contextlib
import errno
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("<IIq")
_FIELD = struct.Struct("<HI")
_COUNT = struct.Struct("<H")
_KEY = struct.Struct("<BI")
_V2 = 1 << 31
"""Set in a frame's length field: the payload starts with the route (version 2)."""
_BY_SEQ, _BY_SESSION, _EVERY_SHARD = 0, 1, 2
_SUFFIX = ".seg"
_TMP = ".tmp"

Entry = dict[bytes, bytes]


class Route(NamedTuple):
    """Where a journaled entry goes on replay (by the shard count of the replaying process)."""

    every_shard: bool = False
    """A control entry (a producer report): a copy to every shard."""
    session_id: str | None = None
    """A record: the shard of this session (:func:`rawtap.shared.shard_for`), else of its seq."""


BY_SEQ = Route()
"""The route of a record without a session, and of frames of unknown origin."""
EVERY_SHARD = Route(every_shard=True)


class JournalFull(Exception):
    """Appending would pass the journal's byte bound."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_frame(seq: int, entry: Entry, route: Route = BY_SEQ) -> bytes:
    """One (version 2) frame holding ``entry`` and its route.

    ``seq`` is -1 for entries that are not records.
    """
    if route.every_shard:
        parts = [bytes((_EVERY_SHARD,))]
    elif route.session_id is None:
        parts = [bytes((_BY_SEQ,))]
    else:
        key = route.session_id.encode("utf-8", "surrogatepass")
        parts = [_KEY.pack(_BY_SESSION, len(key)), key]
    parts.append(_COUNT.pack(len(entry)))
    for key, value in entry.items():
        parts.append(_FIELD.pack(len(key), len(value)))
        parts.append(key)
        parts.append(value)
    payload = b"".join(parts)
    return _FRAME.pack(len(payload) | _V2, zlib.crc32(payload), seq) + payload


def _decode_route(payload: bytes) -> tuple[Route, int]:
    tag = payload[0]
    if tag == _BY_SEQ:
        return BY_SEQ, 1
    if tag == _EVERY_SHARD:
        return EVERY_SHARD, 1
    if tag != _BY_SESSION:
        raise ValueError(f"unknown route tag {tag}")
    _tag, klen = _KEY.unpack_from(payload, 0)
    end = _KEY.size + klen
    if end > len(payload):
        raise ValueError("route length mismatch")
    return Route(session_id=payload[_KEY.size : end].decode("utf-8", "surrogatepass")), end


def _decode_payload(payload: bytes, pos: int) -> Entry:
    (count,) = _COUNT.unpack_from(payload, pos)
    pos += _COUNT.size
    entry: Entry = {}
    for _ in range(count):
        klen, vlen = _FIELD.unpack_from(payload, pos)
        pos += _FIELD.size
        key = payload[pos : pos + klen]
        pos += klen
        entry[key] = payload[pos : pos + vlen]
        pos += vlen
    if pos != len(payload):
        raise ValueError("payload length mismatch")
    return entry


def read_frames(path: Path) -> Iterator[tuple[int, Route | None, Entry]]:
    """``(seq, route, entry)`` for every intact frame of a segment, stopping at the first bad one.

    ``route`` is None for a version 1 frame (written before frames carried it).

    Streams: one frame is in memory at a time (a segment may be 64 MiB), so a
    replay holds one send batch, never the whole file.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while True:
            header = f.read(_FRAME.size)
            if len(header) < _FRAME.size:
                return  # end of the segment (or a torn header: nothing after it to trust)
            length, crc, seq = _FRAME.unpack(header)
            versioned = bool(length & _V2)
            length &= ~_V2
            # A corrupt length must not make us allocate it: past the file's end is torn.
            payload = f.read(length) if pos + _FRAME.size + length <= size else b""
            if len(payload) < length or zlib.crc32(payload) != crc:
                logger.warning("rawtap: %s is torn at byte %d; the rest is ignored", path.name, pos)
                return
            try:
                route, start = _decode_route(payload) if versioned else (None, 0)
                entry = _decode_payload(payload, start)
            except (struct.error, ValueError, IndexError, UnicodeDecodeError):
                logger.warning("rawtap: %s has a corrupt frame at byte %d", path.name, pos)
                return
            del payload  # the entry holds its own copies of the values
            yield seq, route, entry
            pos += _FRAME.size + length


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed segment file, locked by the caller while it replays it."""

    path: Path
    producer_id: str
    fd: int

    def release(self, *, delete: bool) -> None:
        """Unlock (and delete, once replayed or dropped) the segment."""
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


class SpillJournal:
    """The spill directory of one producer (shared with others on the same stream)."""

    def __init__(
        self, directory: Path, producer_id: str, max_bytes: int, *, fsync: bool = True
    ) -> None:
        self.directory = directory
        self.producer_id = producer_id
        self.max_bytes = max_bytes
        self.segment_bytes = max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 4))
        self._fsync = fsync
        self._number = 0
        self._active: Path | None = None
        self._active_fd: int | None = None
        self._active_size = 0
        self._known_bytes = -1  # bytes of every segment in the directory; -1: rescan

    # -- appending ----------------------------------------------------------------

    def append(self, frames: list[bytes]) -> None:
        """Append frames durably; raise JournalFull or OSError (nothing half-written stays)."""
        size = sum(map(len, frames))
        if self.total_bytes() + size > self.max_bytes:
            self.rescan()  # other producers share the bound: count what is on disk now
        if self.total_bytes() + size > self.max_bytes:
            raise JournalFull(f"spill journal {self.directory} is full ({self.max_bytes} bytes)")
        if self._active_fd is None or self._active_size + size > self.segment_bytes:
            self._rotate()
        assert self._active_fd is not None
        fd = self._active_fd
        before = self._active_size
        data = b"".join(frames)
        try:
            written = os.write(fd, data)
            if written != len(data):  # a full disk can take part of a write without an error
                raise OSError(errno.ENOSPC, f"short write to {self._active} ({written} bytes)")  # noqa: TRY301
            if self._fsync:
                os.fsync(fd)
        except OSError:
            # Leave no torn frame behind: cut the segment back to where it was.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
        self._active_size += size
        self._known_bytes += size

    def room(self) -> int:
        """Bytes that may still be appended before the bound."""
        return max(0, self.max_bytes - self.total_bytes())

    def _rotate(self) -> None:
        self.seal()
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            self._number += 1
            path = self.directory / f"{self.producer_id}-{self._number:08d}{_SUFFIX}"
            if path.exists():
                continue
            # Lock before the segment becomes visible under its name: a replaying
            # producer must never claim (and delete) a segment we are about to fill.
            tmp = path.with_name(path.name + _TMP)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.rename(tmp, path)
                if self._fsync:  # the new name must survive a power loss, not only the bytes
                    _fsync_dir(self.directory)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            break
        self._active, self._active_fd, self._active_size = path, fd, 0

    def seal(self) -> None:
        """Close the segment being appended to, making it replayable (by anyone)."""
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None
            if self._active is not None and self._active_size == 0:
                with contextlib.suppress(FileNotFoundError):
                    self._active.unlink()
            self._active = None
            self._active_size = 0

    def forget_after_fork(self, producer_id: str, *inherited_fds: int) -> None:
        """In a forked child: drop the parent's open segments without touching them.

        ``inherited_fds`` are other journal descriptors the parent held (a segment
        it was replaying): closing the child's copies leaves the parent's locks
        alone but keeps this process from pinning them after the parent is gone.
        """
        for fd in (self._active_fd, *inherited_fds):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # our copy of the parent's descriptor only
        self._active = None
        self._active_fd = None
        self._active_size = 0
        self.producer_id = producer_id
        self._number = 0
        self._known_bytes = -1

    # -- replaying ----------------------------------------------------------------

    def _segments(self) -> list[Path]:
        found = []
        try:
            for entry in os.scandir(self.directory):
                if entry.name.endswith(_SUFFIX):
                    with contextlib.suppress(OSError):  # replayed and deleted meanwhile
                        found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
        except OSError:  # no directory yet, or an unusable one: nothing to replay
            return []
        return [path for _, _, path in sorted(found)]

    def total_bytes(self) -> int:
        """Bytes held by every segment in the directory (this producer's and others')."""
        if self._known_bytes < 0:
            total = 0
            for path in self._segments():
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
            self._known_bytes = total
        return self._known_bytes

    def rescan(self) -> None:
        """Forget the cached size: other producers append to and replay the same directory."""
        self._known_bytes = -1

    def is_empty(self) -> bool:
        """True when nothing waits to be replayed (nor is being appended), as on disk now."""
        self.rescan()
        return self.total_bytes() == 0

    def claim_oldest(self, *, include_active: bool) -> Segment | None:
        """Lock the oldest segment nobody else holds; seal our own first if asked."""
        if include_active and self._active_fd is not None and self._active_size > 0:
            self.seal()
        for path in self._segments():
            if path == self._active:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                deleted = os.fstat(fd).st_nlink == 0  # replayed and deleted meanwhile
            except OSError as e:
                # Locked: a live producer appends to it or replays it. Anything else:
                # leave that segment to a later pass rather than stop replaying.
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    logger.warning("rawtap: cannot lock %s (%s); skipped", path.name, e)
                continue
            if deleted:
                os.close(fd)
                continue
            return Segment(path, path.name.rsplit("-", 1)[0], fd)
        self.rescan()
        return None

    def finished(self, segment: Segment, *, delete: bool) -> None:
        """Release a claimed segment; ``delete`` once its entries are in Redis (or dropped)."""
        segment.release(delete=delete)
        self._known_bytes = -1

    def close(self) -> None:
        """Seal the active segment; idempotent."""
        self.seal()
