"""rawtap.consumer: workers that move records from Redis Streams into a store.

The public surface::

    Worker        one consumer-group member: read → commit → acknowledge
    WorkerStats   its counters
    Sink          the protocol a store implements; SqliteSink the embedded default
    open_sink     a sink from a URL (sqlite:///path.db)
    SinkError     a store failure (transient for the worker: it backs off, acks nothing)

Exceptions::

    RawtapError (rawtap.shared)
     ├── SinkError         the store could not commit or read
     └── RedisUnavailable  Redis cannot be reached (CLI and demo)
"""

from rawtap.consumer._redis import RedisUnavailable
from rawtap.consumer._sink import Sink, SinkError, open_sink
from rawtap.consumer._sqlite import SqliteSink
from rawtap.consumer._worker import Worker, WorkerStats

__all__ = [
    "RedisUnavailable",
    "Sink",
    "SinkError",
    "SqliteSink",
    "Worker",
    "WorkerStats",
    "open_sink",
]
