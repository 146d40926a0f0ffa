"""The writer's link to Redis: one client, calls on their own thread, outage and probing.

redis-py is configured with explicit timeouts and *no* automatic retry: its
default (10 retries) can silently write one ``XADD`` twice and stall a thread
for a minute. Our own retries may also write an entry twice; the record id
makes the sink idempotent.

An **outage** starts when a send fails and lasts until every shard's node
answers, probed with capped exponential backoff.
"""

import logging
import random
import time
from collections.abc import Callable

from rawtap.producer._events import Failed
from rawtap.producer._journal import Entry
from rawtap.producer._ledger import Ledger
from rawtap.producer._writer._redis_call import Call, RedisCaller
from rawtap.producer._writer._resp import XaddPacker, is_plain_redis, send_batch
from rawtap.shared import LogOnce, ProducerSettings, RedisClient, open_redis

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0


def connect(settings: ProducerSettings) -> RedisClient:
    """A redis-py client (Redis or Redis Cluster) with explicit timeouts and no retries."""
    return open_redis(
        settings.redis_url,
        cluster=settings.use_cluster,
        socket_timeout=settings.socket_timeout_s,
        connect_timeout=settings.connect_timeout_s,
        name="rawtap-producer",
    )


class RedisLink:
    """The writer's Redis client (made on first use, remade after a failure) and outage state."""

    def __init__(
        self,
        settings: ProducerSettings,
        streams: list[str],
        ledger: Ledger,
        client_factory: Callable[[ProducerSettings], RedisClient],
        give_up: Callable[[float], bool],
    ) -> None:
        self._settings = settings
        self.streams = streams
        self._ledger = ledger
        self._client_factory = client_factory
        self._client: RedisClient | None = None
        self._plain = False
        self._packer = XaddPacker(settings.maxlen)
        self._io = RedisCaller(give_up)
        self.outage = False
        """Redis failed; batches spill until a probe succeeds."""
        self._probe_at = 0.0
        self._backoff = BACKOFF_FIRST_S

    def client(self) -> RedisClient:
        """The client, connecting (lazily) if there is none."""
        if self._client is None:
            self._client = self._client_factory(self._settings)
            self._plain = is_plain_redis(self._client)
        return self._client

    def xadd(self, entries: list[tuple[str, Entry]]) -> None:
        """One pipelined round trip of ``XADD stream … MAXLEN ~`` (one key per command).

        To one server, packed by hand (:mod:`._resp`); to a cluster, redis-py's pipeline.
        """
        self.xadd_wait(self.xadd_submit(entries))

    def xadd_submit(self, entries: list[tuple[str, Entry]]) -> Call:
        """Start :meth:`xadd` on the I/O thread and return at once; :meth:`xadd_wait` for it.

        The writer serializes its next batch while this one is on the wire and in Redis.
        """
        client = self.client()
        call: Callable[[], object]
        if self._plain:
            packed, count = self._packer.pack(entries), len(entries)
            call = lambda: send_batch(client, packed, count)  # noqa: E731
        else:
            pipe = client.pipeline(transaction=False)
            for stream, entry in entries:
                pipe.xadd(stream, entry, maxlen=self._settings.maxlen, approximate=True)  # type: ignore[arg-type]
            call = pipe.execute
        return self._io.submit(call)

    def xadd_wait(self, call: Call) -> None:
        """The outcome of :meth:`xadd_submit`: return, or raise why it failed (or stalled)."""
        self._io.wait(call)
        self._ledger.send_took(time.monotonic() - call.started)

    def send_failed(self, error: Exception, count: int) -> None:
        """A send of ``count`` records failed: reconnect next time, count it, tell observers."""
        self._client = None  # reconnect from scratch on the next attempt
        self._ledger.count("send_failures")
        self._ledger.emit(Failed("send_failed", count, str(error)))

    def enter_outage(self, error: Exception, count: int) -> None:
        """A call failed with a journal to fall back on: spill until a probe succeeds."""
        self.send_failed(error, count)
        _log_once.warning(
            "send", "rawtap: cannot write to Redis (%s); spilling to the journal", error
        )
        if not self.outage:
            self.outage = True
            self._backoff = BACKOFF_FIRST_S
        self._probe_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def maybe_probe(self, now: float) -> bool:
        """In an outage whose backoff is over, probe; True when Redis just came back."""
        if not self.outage or now < self._probe_at:
            return False
        try:
            self._probe()
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            self.enter_outage(e, 0)
            return False
        self.outage = False
        logger.info("rawtap: Redis is reachable again; sending and replaying the journal")
        return True

    def probe_now(self) -> bool:
        """In an outage, one more look: Redis may be back and the backoff not yet over."""
        if self.outage:
            self._probe_at = 0.0
            return self.maybe_probe(time.monotonic())
        return False

    def _probe(self) -> None:
        """Reach the node of every shard: ``XLEN`` each stream, in one pipelined trip.

        Not ``PING``: a cluster client sends that to every node it knows, replicas
        and failed nodes included, while what matters is that each shard's
        current primary answers.
        """
        pipe = self.client().pipeline(transaction=False)
        for stream in self.streams:
            pipe.xlen(stream)
        self._io.run(pipe.execute)

    def close(self) -> None:
        """End the call thread and close the client."""
        self._io.close()
        if self._client is not None:
            self._client.close()
