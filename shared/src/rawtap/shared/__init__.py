"""rawtap.shared: what producer and consumer agree on.

The record schema (:class:`Record`), its codec to and from a Redis stream entry,
stream key naming and sharding (:class:`StreamNames`, :func:`shard_for`), what
rawtap knows of each provider (:data:`PROVIDERS`: hosts, stream terminal
markers, SDK, wire format, GenAI names), record ids, opening a Redis or Redis
Cluster client (:func:`open_redis`) and reading its replies as text
(:func:`reply_text`), URLs shown without passwords (:func:`display_url`),
warnings rate-limited per key (:class:`LogOnce`), and the typed settings read
from ``RAWTAP_*`` environment variables or passed from code.

Exceptions::

    RawtapError
     ├── ConfigError      a setting is missing or invalid (names the variable)
     ├── CodecError       a stream entry cannot be decoded into a Record
     │    └── EntryError  … on ingress, naming the producer and seq it came from
     └── BodyDecodeError  a body's Content-Encoding cannot be undone
"""

from rawtap.shared._codec import (
    decode_entry,
    encode_entry,
    encode_envelope,
    entry_from_parts,
    entry_identity,
)
from rawtap.shared._connection import RedisClient, open_redis, split_cluster_url
from rawtap.shared._decode import (
    BodyDecodeError,
    BodyDecoder,
    content_encodings,
    decode_body,
    decode_bounded,
    decode_chunks,
)
from rawtap.shared._display import display_url, scrub_text
from rawtap.shared._duration import parse_duration
from rawtap.shared._errors import CodecError, ConfigError, EntryError, RawtapError
from rawtap.shared._ids import make_record_id, new_producer_id, record_id_time_ms
from rawtap.shared._log import LogOnce
from rawtap.shared._providers import (
    PROVIDERS,
    Provider,
    Sdk,
    names_read_as,
    provider_from_host,
    terminal_markers,
)
from rawtap.shared._record import (
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    BodyForm,
    Chunk,
    EndState,
    Header,
    Record,
    schema_problem,
)
from rawtap.shared._replies import reply_text
from rawtap.shared._report import (
    ProducerReport,
    SeqRange,
    add_to_ranges,
    decode_report,
    encode_report,
    is_report,
    range_count,
)
from rawtap.shared._settings import ProducerSettings, WorkerSettings, load_settings
from rawtap.shared._streams import MAX_SHARDS, StreamNames, parse_shard_set, shard_for
from rawtap.shared._wire import (
    ENTRY_BODY,
    ENTRY_ENVELOPE,
    ENTRY_KIND,
    ENTRY_RECORD_ID,
    ENTRY_REQUEST_BODY,
    ENTRY_VERSION,
    KIND_REPORT,
)

__all__ = [
    "ENTRY_BODY",
    "ENTRY_ENVELOPE",
    "ENTRY_KIND",
    "ENTRY_RECORD_ID",
    "ENTRY_REQUEST_BODY",
    "ENTRY_VERSION",
    "KIND_REPORT",
    "MAX_SHARDS",
    "PROVIDERS",
    "READABLE_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "BodyDecodeError",
    "BodyDecoder",
    "BodyForm",
    "Chunk",
    "CodecError",
    "ConfigError",
    "EndState",
    "EntryError",
    "Header",
    "LogOnce",
    "ProducerReport",
    "ProducerSettings",
    "Provider",
    "RawtapError",
    "Record",
    "RedisClient",
    "Sdk",
    "SeqRange",
    "StreamNames",
    "WorkerSettings",
    "add_to_ranges",
    "content_encodings",
    "decode_body",
    "decode_bounded",
    "decode_chunks",
    "decode_entry",
    "decode_report",
    "display_url",
    "encode_entry",
    "encode_envelope",
    "encode_report",
    "entry_from_parts",
    "entry_identity",
    "is_report",
    "load_settings",
    "make_record_id",
    "names_read_as",
    "new_producer_id",
    "open_redis",
    "parse_duration",
    "parse_shard_set",
    "provider_from_host",
    "range_count",
    "record_id_time_ms",
    "reply_text",
    "schema_problem",
    "scrub_text",
    "shard_for",
    "split_cluster_url",
    "terminal_markers",
]
