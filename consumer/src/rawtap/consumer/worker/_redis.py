"""Redis access for workers and the CLI: connecting, the consumer group, errors.

redis-py is given explicit timeouts and no automatic retry. A blocking read
must not hit the socket timeout, so reads get ``block`` plus the timeout.
``redis+cluster://`` URLs (or ``cluster=True``) give the Redis Cluster client.
"""

import logging
import threading
import time
from typing import TYPE_CHECKING

import redis

from rawtap.shared import RawtapError, WorkerSettings, display_url, open_redis, scrub_text

if TYPE_CHECKING:
    from rawtap.shared import RedisClient

logger = logging.getLogger(__name__)


class RedisUnavailable(RawtapError):
    """Redis cannot be reached; the message names the URL and how to start one."""


def connect(settings: WorkerSettings, *, name: str = "rawtap-worker") -> "RedisClient":
    """A client whose socket timeout outlasts a blocking read, with no hidden retries."""
    return open_redis(
        settings.redis_url,
        cluster=settings.use_cluster,
        socket_timeout=settings.socket_timeout_s + settings.block_ms / 1000,
        connect_timeout=settings.connect_timeout_s,
        name=name,
    )


def wait_for_redis(
    settings: WorkerSettings, stopping: threading.Event, *, first_s: float, max_s: float
) -> "RedisClient | None":
    """Connect, waiting with backoff while Redis does not answer; None if stopped meanwhile.

    Logs once when Redis is found down and once when it answers. Refused
    credentials or permissions are not waited for: they raise at once.
    """
    delay = first_s
    down_since: float | None = None
    while not stopping.is_set():
        client = None
        try:
            client = connect(settings, name=f"rawtap-worker:{settings.consumer}")
            client.ping()
        except (redis.AuthenticationError, redis.ResponseError):
            if client is not None:
                client.close()
            raise
        except redis.RedisError as e:
            if client is not None:
                client.close()
            if down_since is None:
                down_since = time.monotonic()
                logger.warning(
                    "%s; waiting for it (retrying with backoff up to %.0fs)",
                    describe(e, settings.redis_url),
                    max_s,
                )
            stopping.wait(delay)
            delay = min(delay * 2, max_s)
            continue
        if down_since is not None:
            logger.warning(
                "Redis answers again after %.1fs; starting", time.monotonic() - down_since
            )
        return client
    return None


def ensure_group(client: "RedisClient", stream: str, group: str) -> bool:
    """Create ``group`` on ``stream`` at id 0 (creating the stream); True if it was created.

    Starting at ``0``, not ``$``, means records written before any worker
    existed are consumed too. Only the "already exists" reply is swallowed.
    """
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" in str(e):
            return False
        raise
    return True


def describe(error: redis.RedisError, url: str) -> str:
    """One line saying what failed and how to recover."""
    if isinstance(error, redis.AuthenticationError):
        return scrub_text(f"Redis at {display_url(url)} refused the credentials: {error}")
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return scrub_text(
            f"cannot reach Redis at {display_url(url)} ({error}); start one with "
            "`redis-server --port 6379` or set RAWTAP_REDIS_URL"
        )
    return scrub_text(f"Redis at {display_url(url)} answered with an error: {error}")
