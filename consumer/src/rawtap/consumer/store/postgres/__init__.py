"""The PostgreSQL store: :class:`PostgresSink`, the production store (psycopg 3)."""

from rawtap.consumer.store.postgres._dialect import DIALECT
from rawtap.consumer.store.postgres._errors import DATA_ERROR_CLASSES, is_data_error
from rawtap.consumer.store.postgres._migrate import Partitioning
from rawtap.consumer.store.postgres._sink import InsertMethod, PostgresSink
from rawtap.consumer.store.postgres._url import split_url
from rawtap.consumer.store.postgres._values import ns_to_datetime

__all__ = [
    "DATA_ERROR_CLASSES",
    "DIALECT",
    "InsertMethod",
    "Partitioning",
    "PostgresSink",
    "is_data_error",
    "ns_to_datetime",
    "split_url",
]
