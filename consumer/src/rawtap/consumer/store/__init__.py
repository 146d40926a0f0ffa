"""The store: where committed records live, and how they are read back.

``Sink`` is the worker's side (commit a batch idempotently, the ledger of dead
letters and producer reports, retention); ``Store`` adds the read side. Two
implementations: ``SqliteSink`` (``sqlite/``, the embedded default) and
``PostgresSink`` (``postgres/``); ``open_sink`` picks one from a URL. Both read
through one set of SELECTs over a dialect (``_reads``, ``_dialect``) and write
the ledger with one set of statements (``_ledger``); what truly differs — COPY
or executemany, partitions, migrations — stays in each subpackage. The SQL
files under ``migrations/`` create and upgrade each dialect's schema.
``LedgerReader`` gives telemetry the ledger's figures off the worker's thread.
"""

from rawtap.consumer.store._accounting import Accounting, DeadLetter, ProducerBalance
from rawtap.consumer.store._ledger_reader import LedgerReader
from rawtap.consumer.store._open import open_sink
from rawtap.consumer.store._retention import RetentionSchedule, purge_older_than
from rawtap.consumer.store._rows import FILTER_MAX_BYTES, clamp_i64
from rawtap.consumer.store._sink import (
    CallFacts,
    RecordQuery,
    RecordSummary,
    Sink,
    SinkError,
    Store,
    StoredRecord,
)
from rawtap.consumer.store.postgres import PostgresSink
from rawtap.consumer.store.sqlite import SqliteSink, path_from_url

__all__ = [
    "FILTER_MAX_BYTES",
    "Accounting",
    "CallFacts",
    "DeadLetter",
    "LedgerReader",
    "PostgresSink",
    "ProducerBalance",
    "RecordQuery",
    "RecordSummary",
    "RetentionSchedule",
    "Sink",
    "SinkError",
    "SqliteSink",
    "Store",
    "StoredRecord",
    "clamp_i64",
    "open_sink",
    "path_from_url",
    "purge_older_than",
]
