"""The spill journal's crash-safety details, on a real directory."""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path

import pytest

from rawtap.producer._journal import (
    BY_SEQ,
    EVERY_SHARD,
    JournalFull,
    Route,
    SpillJournal,
    encode_frame,
    read_frames,
)


def _frames(n: int, size: int = 100) -> list[bytes]:
    return [encode_frame(i, {b"body": b"x" * size}) for i in range(n)]


def test_a_new_segment_is_locked_before_anyone_can_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    visible_when_locked: list[list[str]] = []
    real_flock = fcntl.flock

    def spying_flock(fd: int, op: int) -> None:
        visible_when_locked.append(sorted(p.name for p in tmp_path.glob("*.seg")))
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", spying_flock)
    journal = SpillJournal(tmp_path, "a" * 16, 1 << 20)
    journal.append(_frames(1))
    monkeypatch.undo()
    # A replaying producer lists *.seg: nothing was listable before the lock was held.
    assert visible_when_locked == [[]]
    (segment,) = tmp_path.glob("*.seg")
    fd = os.open(segment, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):  # the appender holds it from its first byte
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    other = SpillJournal(tmp_path, "b" * 16, 1 << 20)
    assert other.claim_oldest(include_active=False) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_the_bound_counts_what_other_producers_wrote(tmp_path: Path) -> None:
    bound = 64 * 1024
    first = SpillJournal(tmp_path, "a" * 16, bound)
    second = SpillJournal(tmp_path, "b" * 16, bound)
    first.append(_frames(400))  # ~46 KB
    second.total_bytes()  # cache a view, then let the directory change under it
    first.append(_frames(100))
    with pytest.raises(JournalFull):
        second.append(_frames(200))  # would pass the shared bound
    # Once the first producer's segments are replayed and deleted, room is seen again.
    first.seal()
    claimed = second.claim_oldest(include_active=False)
    assert claimed is not None
    assert sum(1 for _ in read_frames(claimed.path)) == 500
    second.finished(claimed, delete=True)
    second.append(_frames(200))
    assert not second.is_empty()


def test_segments_other_producers_leave_are_seen(tmp_path: Path) -> None:
    mine = SpillJournal(tmp_path, "a" * 16, 1 << 20)
    assert mine.is_empty()
    left = SpillJournal(tmp_path, "b" * 16, 1 << 20)
    left.append(_frames(3))
    left.close()  # the other process exits, leaving its segment behind
    assert not mine.is_empty()
    segment = mine.claim_oldest(include_active=False)
    assert segment is not None
    assert segment.producer_id == "b" * 16


def test_a_new_segment_name_is_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    synced: list[bool] = []  # True for a directory, False for a file
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    SpillJournal(tmp_path, "a" * 16, 1 << 20).append(_frames(2))
    assert synced == [True, False]  # the directory entry, then the frames


def _version1_frame(seq: int, entry: dict[bytes, bytes]) -> bytes:
    """A frame as releases before routed frames wrote it (built by hand, not by our encoder)."""
    payload = struct.pack("<H", len(entry)) + b"".join(
        struct.pack("<HI", len(k), len(v)) + k + v for k, v in entry.items()
    )
    return struct.pack("<IIq", len(payload), zlib.crc32(payload), seq) + payload


def test_frames_carry_their_route_and_version1_frames_stay_readable(tmp_path: Path) -> None:
    journal = SpillJournal(tmp_path, "a" * 16, 1 << 20)
    old = {b"v": b"1", b"env": b'{"session_id":"s-old"}'}
    journal.append(
        [
            _version1_frame(0, old),
            encode_frame(1, {b"env": b"{}"}, Route(session_id="user-\udcff-42")),
            encode_frame(2, {b"env": b"{}"}),
            encode_frame(-1, {b"kind": b"report", b"env": b"{}"}, EVERY_SHARD),
            _version1_frame(3, {b"body": b""}),
        ]
    )
    journal.seal()
    claimed = journal.claim_oldest(include_active=False)
    assert claimed is not None
    assert list(read_frames(claimed.path)) == [
        (0, None, old),  # no route: the replay reads the session from the envelope
        (1, Route(session_id="user-\udcff-42"), {b"env": b"{}"}),
        (2, BY_SEQ, {b"env": b"{}"}),
        (-1, EVERY_SHARD, {b"kind": b"report", b"env": b"{}"}),
        (3, None, {b"body": b""}),
    ]
    journal.finished(claimed, delete=True)
