"""Without a journal: a failed batch is retried in memory, with capped backoff, until it is sent.

Its bytes stay counted against the buffer's bound meanwhile, so ``record()``
starts refusing (and counting) instead of growing memory. Once ``close()`` is
called, retries go on only until its deadline.
"""

import logging
import random
import threading
import time
from collections.abc import Callable

from rawtap.producer._journal import Entry
from rawtap.producer._writer._link import BACKOFF_FIRST_S, BACKOFF_MAX_S, RedisLink
from rawtap.shared import LogOnce

logger = logging.getLogger(__name__)
_log_once = LogOnce(logger)


def send_until_done(
    link: RedisLink,
    entries: list[tuple[str, Entry]],
    stop: threading.Event,
    deadline: Callable[[], float],
    waiting: Callable[[], None],
) -> bool:
    """True once ``entries`` were sent; False when ``stop`` is set and ``deadline()`` passed.

    ``waiting()`` is called after each failure (the writer checks its memory bound then).
    """
    delay = BACKOFF_FIRST_S
    while True:
        try:
            link.xadd(entries)
        except Exception as e:  # noqa: BLE001 - any failure of a send is an outage, never a dead writer
            link.send_failed(e, len(entries))
            _log_once.warning(
                "send", "rawtap: cannot write to Redis (%s); retrying, records stay buffered", e
            )
            waiting()  # the buffer fills while we wait: say so now
        else:
            return True
        if stop.is_set():
            left = deadline() - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
        else:
            # Returns at once when close() is called, to use what is left of its bound.
            stop.wait(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, BACKOFF_MAX_S)
