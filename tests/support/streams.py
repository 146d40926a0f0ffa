"""Typed reads of Redis stream entries for tests.

redis-py types ``xrange`` loosely (``str | bytes`` keys, optional results);
the test clients never decode responses, so every id, field and value is bytes.
"""

from __future__ import annotations

from typing import cast

import redis

Entry = tuple[bytes, dict[bytes, bytes]]
"""One stream entry: its id and its fields."""


def xrange_entries(client: redis.Redis, stream: str | bytes, **kw: str | int) -> list[Entry]:
    """``XRANGE stream`` (``kw`` as for ``client.xrange``) with bytes types."""
    return cast(list[Entry], client.xrange(stream, **kw))  # type: ignore[arg-type]
