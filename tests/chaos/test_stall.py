"""A stalled Redis must not lose what a closed port does not (issue #11).

Each scenario runs the producer in a process of its own
(:mod:`tests.support.stall_probe`) so its RSS is measured alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rawtap.producer._journal import SpillJournal, encode_frame
from rawtap.producer._writer import journal_dir
from rawtap.shared import ProducerSettings
from tests.support.chaos import ROOT, Chaos
from tests.support.services import RedisServer, free_port

pytestmark = pytest.mark.chaos

SLACK_MB = 30
"""What docs/reliability.md allows beside ``max_memory_mb``: interpreter and allocator slack."""


def server_pid(chaos: Chaos) -> int:
    """The private redis-server's pid, for the probe to SIGSTOP."""
    assert isinstance(chaos.redis, RedisServer)
    assert chaos.redis.proc is not None
    return chaos.redis.proc.pid


def run_stalled_or_refused(chaos: Chaos, stalled: bool, **spec: Any) -> dict[str, Any]:
    """The probe's figures for 10 KB records at 2,000/s, 16 MB buffer, 1 GB journal bound,
    2 s socket timeout, against this Redis SIGSTOPped or a closed port; ``spec`` overrides.
    """
    full: dict[str, Any] = {
        "redis_url": chaos.redis.url if stalled else f"redis://127.0.0.1:{free_port()}/0",
        "prefix": chaos.prefix,
        "spill_max_mb": 1024,
        "max_memory_mb": 16,
        "size": 10_000,
        "rate": 2000,
        "socket_timeout_s": 2.0,
        **spec,
    }
    if stalled:
        full["stop_pid"] = server_pid(chaos)
    return run_probe(full)


def run_probe(spec: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run the probe process; its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.stall_probe", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_replay_streams_a_segment_within_the_memory_bound(chaos: Chaos, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    settings = ProducerSettings(
        redis_url=chaos.redis.url, stream_prefix=chaos.prefix, spill_dir=str(spill)
    )
    directory = journal_dir(settings)
    assert directory is not None
    # One full 64 MiB segment, as a 1 GiB journal writes them, left by an earlier run.
    journal = SpillJournal(directory, "e" * 16, 1024 * 1024 * 1024, fsync=False)
    body = b"r" * 10_000
    frames = [encode_frame(i, {b"v": b"1", b"env": body}) for i in range(6000)]
    for k in range(0, len(frames), 500):
        journal.append(frames[k : k + 500])
    journal.close()
    on_disk = sum(p.stat().st_size for p in directory.iterdir())
    assert on_disk > 55 * 2**20
    spec = {
        "redis_url": chaos.redis.url,
        "prefix": chaos.prefix,
        "spill_dir": str(spill),
        "max_memory_mb": 16,
        "count": 0,
        "replay_only": True,
    }
    out = run_probe(spec)
    with chaos.client() as client:
        assert client.xlen(chaos.stream) >= 6000  # the whole segment went to Redis
    assert out["journal_bytes"] == 0
    grew = out["peak_mb"] - out["base_mb"]
    print(f"\n[replay] {on_disk / 2**20:.0f} MiB segment replayed, RSS +{grew:.1f} MB")
    assert grew <= 16 + SLACK_MB, f"RSS grew {grew:.1f} MB replaying, bound 16 + {SLACK_MB}"


@pytest.mark.parametrize("stalled", [True, False], ids=["stalled", "closed-port"])
def test_close_accounts_for_every_accepted_record(chaos: Chaos, stalled: bool) -> None:
    """No journal, Redis unusable: at close, accepted = sent + spilled + dropped, exactly.

    Stalled (SIGSTOP: the writer is stuck in a socket read when close() gives up)
    the records it held and those still buffered used to be counted nowhere.
    """
    out = run_stalled_or_refused(chaos, stalled, spill_dir="", count=2000, close_timeout_s=0.5)
    dropped: dict[str, int] = out["dropped"]
    accounted = (
        out["sent"]
        + out["spilled"]
        + sum(n for reason, n in dropped.items() if reason not in ("buffer_full",))
    )
    print(
        f"\n[close {'stalled' if stalled else 'closed port'}] {out['accepted']} accepted, "
        f"dropped {dropped}, close() {out['close_s']:.2f} s"
    )
    assert out["close_ok"] is False
    assert out["buffered_records"] == 0
    assert dropped.get("unsent_at_close", 0) > 0
    assert out["accepted"] == accounted


@pytest.mark.parametrize("stalled", [True, False], ids=["stalled", "closed-port"])
def test_a_stalled_redis_refuses_no_more_than_a_closed_port(
    chaos: Chaos, tmp_path: Path, stalled: bool
) -> None:
    """10 KB records at 2,000/s, a 16 MB buffer and a 1 GB journal: nothing refused.

    The writer waits for an unanswered call only while the buffer has room, then
    spills; before, each send to a SIGSTOPped server held it for socket_timeout_s
    while the buffer filled (11,915 of 20,000 refused; a closed port: 0).
    """
    out = run_stalled_or_refused(
        chaos, stalled, spill_dir=str(tmp_path / "spill"), count=8000, close_timeout_s=5.0
    )
    dropped: dict[str, int] = out["dropped"]
    grew = out["peak_mb"] - out["base_mb"]
    print(
        f"\n[{'stalled' if stalled else 'closed port'}] {out['accepted']} accepted, "
        f"{out['spilled']} spilled, dropped {dropped}, RSS +{grew:.1f} MB, "
        f"close() {out['close_s']:.2f} s"
    )
    assert dropped == {}  # nothing refused, nothing lost
    assert out["accepted"] == 8001  # with the warm-up record
    assert out["sent"] + out["spilled"] == out["accepted"]
    assert grew <= 16 + SLACK_MB, f"RSS grew {grew:.1f} MB, bound 16 + {SLACK_MB}"
