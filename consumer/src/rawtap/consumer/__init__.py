"""rawtap.consumer: workers that move records from Redis Streams into a store, and read it back.

The public surface::

    Worker          one consumer-group member: read → derive → commit → acknowledge
    WorkerStats     its counters
    WorkerTelemetry its OpenTelemetry spans and metrics (TelemetrySettings: RAWTAP_TELEMETRY*)
    Sink, Store     the protocols a store implements (write side; read side)
    SqliteSink      the embedded default store; PostgresSink the production one
    open_sink       a store from a URL (sqlite:///path.db, postgresql://…)
    RecordQuery     filters for reading; RecordSummary, StoredRecord what comes back
    derive          versioned per-provider parsers: a Record → Derived (ToolCall)
    export_jsonl, export_parquet, rederive, purge_older_than   the read side's operations

Exceptions::

    RawtapError (rawtap.shared)
     ├── SinkError         the store could not commit or read
     └── RedisUnavailable  Redis cannot be reached (CLI and demo)
"""

from rawtap.consumer.derivation import (
    PARSER_VERSIONS,
    Derived,
    ToolCall,
    derive,
    derive_all,
    is_stale,
)
from rawtap.consumer.read import (
    ExportReport,
    export_jsonl,
    export_parquet,
    parse_time,
    rederive,
    render_show,
    resolve_record,
)
from rawtap.consumer.store import (
    PostgresSink,
    RecordQuery,
    RecordSummary,
    Sink,
    SinkError,
    SqliteSink,
    Store,
    StoredRecord,
    open_sink,
    purge_older_than,
)
from rawtap.consumer.telemetry import TelemetrySettings, WorkerTelemetry
from rawtap.consumer.worker import RedisUnavailable, Worker, WorkerStats

__all__ = [
    "PARSER_VERSIONS",
    "Derived",
    "ExportReport",
    "PostgresSink",
    "RecordQuery",
    "RecordSummary",
    "RedisUnavailable",
    "Sink",
    "SinkError",
    "SqliteSink",
    "Store",
    "StoredRecord",
    "TelemetrySettings",
    "ToolCall",
    "Worker",
    "WorkerStats",
    "WorkerTelemetry",
    "derive",
    "derive_all",
    "export_jsonl",
    "export_parquet",
    "is_stale",
    "open_sink",
    "parse_time",
    "purge_older_than",
    "rederive",
    "render_show",
    "resolve_record",
]
