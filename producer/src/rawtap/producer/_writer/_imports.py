"""redis-py, imported on the writer thread (``import rawtap.producer`` must stay light).

``import redis`` costs hundreds of milliseconds (it pulls in the OpenTelemetry
SDK's metrics when that is installed), so the writer thread imports it as soon
as it starts, not the host's thread. A ``fork()`` while that import runs would
leave the child with a module lock held by a thread it does not have, and its
own first import of redis would hang: a fork waits until the import is done
(and none starts during a fork).
"""

import os
import threading

_IMPORTING = threading.Lock()


def import_redis() -> None:
    """Import everything of redis-py the writer uses (at once when already imported)."""
    with _IMPORTING:
        import redis
        import redis.backoff
        import redis.cluster
        import redis.retry  # noqa: F401


def _release() -> None:
    if _IMPORTING.locked():
        _IMPORTING.release()


os.register_at_fork(before=_IMPORTING.acquire, after_in_parent=_release, after_in_child=_release)
