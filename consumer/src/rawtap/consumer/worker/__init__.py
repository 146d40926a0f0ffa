"""The worker: one consumer-group member moving records from Redis Streams into a store.

It reads its own pending entries first, then new ones; derives each record's
fields; commits idempotently; acknowledges only after the commit; reclaims what
dead consumers left; and dead-letters what can never be stored (listed,
shown and requeued with the functions here).
"""

from rawtap.consumer.worker._dead_letters import get_dead_letter, list_dead_letters, requeue
from rawtap.consumer.worker._redis import RedisUnavailable, connect, describe
from rawtap.consumer.worker._stats import WorkerStats
from rawtap.consumer.worker._worker import Worker

__all__ = [
    "RedisUnavailable",
    "Worker",
    "WorkerStats",
    "connect",
    "describe",
    "get_dead_letter",
    "list_dead_letters",
    "requeue",
]
