"""The SQLite store: :class:`SqliteSink`, the embedded default (one file, WAL mode)."""

from rawtap.consumer.store.sqlite._errors import DATA_ERROR_CODES, is_data_error
from rawtap.consumer.store.sqlite._sink import DIALECT, SqliteSink, path_from_url

__all__ = ["DATA_ERROR_CODES", "DIALECT", "SqliteSink", "is_data_error", "path_from_url"]
