"""The writer thread: buffer → serialize → pipelined ``XADD … MAXLEN ~`` → Redis.

One daemon thread per Recorder (per process). Where a batch goes:

* **Redis**, normally (:mod:`._link`: the client, outages and probes);
* the **spill journal** on local disk when Redis fails or when the slowest
  consumer group's backlog on the record's shard nears ``maxlen``
  (:mod:`._backpressure`); the journal is replayed, oldest segment first, once
  Redis answers and every shard's backlog is back under the low watermark
  (:mod:`._spill`);
* **dropped and counted** (by ``seq`` range and reason, reported to the
  workers, :mod:`._reports`) when the journal is full (``overflow`` policy)
  or the disk fails.

**Shards** (``shards = N``): each record goes to the stream of its shard
(:func:`rawtap.shared.shard_for`, a hash of the session computed on the writer
thread, not on the caller's path). One pipeline carries a batch to all its
shards; with a Redis Cluster redis-py splits it per node, every command
touching one key. Backpressure is per shard: only the records of a lagging
shard are spilled, the others keep flowing. Producer reports go to every
shard that is not backpressured (they are cumulative, so a skipped copy loses
nothing).

The loop itself, and the no-journal retry in memory, are in :mod:`._thread`.
"""

from rawtap.producer._writer._link import connect
from rawtap.producer._writer._spill import journal_dir
from rawtap.producer._writer._thread import StreamWriter

__all__ = ["StreamWriter", "connect", "journal_dir"]
