"""Typed reads of Redis stream entries for tests.

redis-py types ``xrange`` loosely (``str | bytes`` keys, optional results);
the test clients never decode responses, so every id, field and value is bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import redis

Entry = tuple[bytes, dict[bytes, bytes]]
"""One stream entry: its id and its fields."""


def xrange_entries(client: redis.Redis, stream: str | bytes, **kw: str | int) -> list[Entry]:
    """``XRANGE stream`` (``kw`` as for ``client.xrange``) with bytes types."""
    return cast(list[Entry], client.xrange(stream, **kw))  # type: ignore[arg-type]


def xadd_entry(client: redis.Redis, stream: str, fields: Mapping[bytes, bytes]) -> bytes:
    """``XADD stream * fields`` for an encoded entry; returns the new entry's id."""
    # redis-py's field mapping is invariant in its key/value union, so bytes-only fails.
    return cast(bytes, client.xadd(stream, fields))  # type: ignore[arg-type]
