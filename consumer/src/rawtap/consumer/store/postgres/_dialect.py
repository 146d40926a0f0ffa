"""PostgreSQL's spelling of the SQL both stores share (a :class:`Dialect`)."""

from rawtap.consumer.store._dialect import Dialect
from rawtap.consumer.store.postgres._search import MATCH, tsquery
from rawtap.consumer.store.postgres._values import ns_to_datetime

DIALECT = Dialect(
    "postgresql",
    placeholder="%s",
    greatest="GREATEST",
    time_key="started_at",
    time_key_value=ns_to_datetime,
    text_match=MATCH,
    text_query=tsquery,
)
"""PostgreSQL's spelling of the shared SQL: reads go through ``started_at``, the
partition key, so that partitions are pruned."""
