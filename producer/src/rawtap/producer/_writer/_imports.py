"""redis-py, imported on the writer thread (``import rawtap.producer`` must stay light).

``import redis`` costs hundreds of milliseconds (it pulls in the OpenTelemetry
SDK's metrics when that is installed), so the writer thread imports it as soon
as it starts, not the host's thread. A ``fork()`` while that import runs would
leave the child with a module lock held by a thread it does not have, and its
own first import of redis would hang: a fork waits until the import is done
(and none starts during a fork). The modules a first connection imports on its
own are imported here too, under the same lock.
"""

import os
import threading

_IMPORTING = threading.Lock()


def import_redis() -> None:
    """Import everything of redis-py the writer uses (at once when already imported)."""
    with _IMPORTING:
        # What the first connection would otherwise import lazily, on this thread, where a
        # fork could catch it half done: redis-py reads its version through
        # importlib.metadata (email.parser) when a client is built, and getaddrinfo encodes
        # the host name with the idna codec.
        import email.parser
        import encodings.idna
        import importlib.metadata

        import redis
        import redis.backoff
        import redis.cluster
        import redis.retry
        import redis.utils

        redis.utils.get_lib_version()  # type: ignore[no-untyped-call]
        del email, encodings, importlib


def _release() -> None:
    if _IMPORTING.locked():
        _IMPORTING.release()


os.register_at_fork(before=_IMPORTING.acquire, after_in_parent=_release, after_in_child=_release)
