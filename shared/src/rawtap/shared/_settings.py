"""Typed settings, from ``RAWTAP_*`` environment variables or from code.

Arguments given in code win over the environment, which wins over defaults::

    ProducerSettings(max_memory_mb=32)          # code
    RAWTAP_MAX_MEMORY_MB=32 python app.py       # environment

Invalid values raise :class:`~rawtap.shared.ConfigError` with one line naming
the variable, e.g. ``RAWTAP_MAX_MEMORY_MB: Input should be greater than 0``.
"""

import os
import socket
import tempfile
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rawtap.shared._errors import ConfigError
from rawtap.shared._streams import MAX_SHARDS, parse_shard_set

_ENV_PREFIX = "RAWTAP_"

_S = TypeVar("_S", bound=BaseSettings)


class _Common(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, extra="forbid", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis to write to / read from (``redis://``, ``rediss://`` for TLS, ``unix://``).

    ``redis+cluster://host:port[,host:port…]`` (``rediss+cluster://`` for TLS)
    selects the Redis Cluster client; the hosts are startup nodes.
    """
    cluster: bool = False
    """Use redis-py's Redis Cluster client with a plain ``redis://`` URL (``RAWTAP_CLUSTER``)."""
    shards: int = Field(default=1, ge=1, le=MAX_SHARDS)
    """Stream keys records are spread over (``rawtap:{0}`` …), by a hash of the session.

    Producers and workers must agree; see docs/scaling.md for changing it.
    """
    stream_prefix: str = Field(default="rawtap", min_length=1, pattern=r"^[^{}\s]+$")
    """Prefix of every Redis key rawtap uses (``rawtap:{0}``, ``rawtap:{dead}``)."""
    socket_timeout_s: float = Field(default=2.0, gt=0)
    """Timeout of one Redis command round trip. redis-py's 5 s default is never used."""
    connect_timeout_s: float = Field(default=2.0, gt=0)
    """Timeout of opening a Redis connection."""

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ValueError(
                "must start with redis://, rediss://, unix:// or redis+cluster:// "
                "(rediss+cluster://)"
            )
        return value

    @property
    def use_cluster(self) -> bool:
        """True when the Redis Cluster client is to be used (setting or URL scheme)."""
        return self.cluster or self.redis_url.startswith(("redis+cluster://", "rediss+cluster://"))


def _default_spill_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"rawtap-spill-{os.getuid()}")


class ProducerSettings(_Common):
    """Settings of a :class:`rawtap.producer.Recorder` (``RAWTAP_*`` variables)."""

    enabled: bool = True
    """``False`` makes every record call a no-op (``RAWTAP_ENABLED=false``)."""
    providers: Annotated[frozenset[str] | None, NoDecode] = None
    """Only record these providers (``RAWTAP_PROVIDERS=openai,anthropic``); all when unset."""
    service: str | None = Field(default_factory=lambda: os.environ.get("OTEL_SERVICE_NAME") or None)
    """Service name stamped on records; defaults to ``OTEL_SERVICE_NAME``."""
    max_memory_mb: float = Field(default=64.0, gt=0)
    """Bound on bytes held in memory waiting for Redis; past it records are refused and counted."""
    max_buffered_records: int = Field(default=100_000, gt=0)
    """Bound on the number of records held in memory."""
    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """Bodies above this are stored truncated, flagged, with their original size."""
    maxlen: int = Field(default=1_000_000, gt=0)
    """Approximate cap of the stream (``XADD … MAXLEN ~``): memory bound for Redis."""
    send_batch_size: int = Field(default=500, gt=0, le=10_000)
    """Records per pipelined round trip to Redis."""
    close_timeout_s: float = Field(default=5.0, ge=0)
    """How long ``close()`` and the exit hook wait for buffered records to be sent."""
    memory_warning_ratio: float = Field(default=0.8, gt=0, le=1)
    """A memory-warning event fires when the buffer passes this share of ``max_memory_mb``."""
    spill_dir: str | None = Field(default_factory=_default_spill_dir)
    """Directory of the spill journal; empty disables spilling (records then wait in memory)."""
    spill_max_mb: float = Field(default=1024.0, gt=0)
    """Bound on the journal's size on disk (all producers sharing the directory)."""
    spill_fsync: bool = True
    """fsync every spilled batch (crash-safe); off trades safety for speed on slow disks."""
    overflow: Literal["drop_newest", "drop_oldest"] = "drop_newest"
    """What goes when the journal is full too: the batch at hand, or the oldest segment."""
    backpressure: bool = True
    """Spill instead of sending when undelivered entries near ``maxlen`` (MAXLEN would trim)."""
    backlog_high_ratio: float = Field(default=0.8, gt=0, le=1)
    """Start spilling when the slowest group's backlog passes this share of ``maxlen``."""
    backlog_low_ratio: float = Field(default=0.5, ge=0, lt=1)
    """Send directly (and replay the journal) again below this share of ``maxlen``."""
    backlog_check_s: float = Field(default=1.0, gt=0)
    """How often the writer reads stream length and group lag."""
    report_interval_s: float = Field(default=10.0, gt=0)
    """How often the producer reports its accepted count and drops to the workers."""
    handle_sigterm: bool = True
    """Flush on SIGTERM (only when the host left SIGTERM at its default action)."""
    redact_names: Annotated[tuple[str, ...], NoDecode] = ()
    """More header and query-parameter names whose values are credentials, besides the
    defaults (``RAWTAP_REDACT_NAMES=x-tenant-pass,x-my-*``; ``fnmatch`` patterns)."""

    def __init__(self, **values: Any) -> None:
        # The story's name (ResponseRecorderConfig(buffer_size=…)) for max_buffered_records.
        # Renamed here, before the environment is merged in, so code still wins over it.
        if "buffer_size" in values:
            if "max_buffered_records" in values:
                raise ConfigError(
                    "invalid setting buffer_size: it is another name for max_buffered_records; "
                    "give one of them"
                )
            values["max_buffered_records"] = values.pop("buffer_size")
        super().__init__(**values)

    @property
    def buffer_size(self) -> int:
        """The story's name for ``max_buffered_records``."""
        return self.max_buffered_records

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
            return names or None
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(p).lower() for p in value)
        return value

    @field_validator("redact_names", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            return tuple(sorted({str(n).strip().lower() for n in value if str(n).strip()}))
        return value

    @property
    def max_memory_bytes(self) -> int:
        """``max_memory_mb`` in bytes."""
        return int(self.max_memory_mb * 1024 * 1024)


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(_Common):
    """Settings of a :class:`rawtap.consumer.Worker` (``RAWTAP_*`` variables)."""

    sink_url: str = "sqlite:///rawtap.db"
    """Where records are committed: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``."""
    group: str = Field(default="rawtap", min_length=1)
    """Consumer group name."""
    consumer: str = Field(default_factory=_default_consumer_name, min_length=1)
    """Its name in the group; keep it stable across restarts (default ``hostname-pid``)."""
    batch_size: int = Field(default=500, gt=0, le=10_000)
    """Entries read (``XREADGROUP COUNT``) and committed per transaction."""
    block_ms: int = Field(default=1000, ge=1, le=60_000)
    """How long one read waits for new entries; also bounds how fast SIGTERM is noticed."""
    claim_idle_ms: int = Field(default=60_000, gt=0)
    """Entries idle this long in a dead consumer's pending list are taken over."""
    consumer_expiry_ms: int = Field(default=3_600_000, gt=0)
    """Consumers silent this long with nothing pending are removed from the group."""
    max_deliveries: int = Field(default=5, gt=0)
    """Deliveries after which an entry goes to the dead-letter stream."""
    dead_letter_maxlen: int = Field(default=100_000, gt=0)
    """Approximate cap of the dead-letter stream."""
    log_format: Literal["text", "json"] = "text"
    """How the CLI logs."""
    retention: str | None = None
    """Delete records older than this (``30d``, ``12h``; ``RAWTAP_RETENTION``); unset keeps all."""
    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often a worker applies ``retention`` (every worker may; the sink makes it idempotent)."""
    read_shards: str | None = None
    """Shards this worker reads, e.g. ``0-3`` or ``0,2,5`` (``RAWTAP_READ_SHARDS``,
    ``rawtap worker --shards``); all ``shards`` when unset."""

    @model_validator(mode="after")
    def _valid_read_shards(self) -> "WorkerSettings":
        if self.read_shards is not None:
            try:
                parse_shard_set(self.read_shards, self.shards)
            except ValueError as e:
                raise ValueError(f"read_shards {self.read_shards!r}: {e}") from e
        return self

    @property
    def assigned_shards(self) -> tuple[int, ...]:
        """The shard indexes this worker reads."""
        if self.read_shards is None:
            return tuple(range(self.shards))
        return parse_shard_set(self.read_shards, self.shards)

    @field_validator("retention")
    @classmethod
    def _valid_retention(cls, value: str | None) -> str | None:
        if value is not None:
            from rawtap.shared._duration import parse_duration

            try:
                parse_duration(value)
            except ConfigError as e:
                raise ValueError(str(e)) from e
        return value

    @property
    def retention_s(self) -> float | None:
        """``retention`` in seconds, or None when unset."""
        from rawtap.shared._duration import parse_duration

        return None if self.retention is None else parse_duration(self.retention)

    @field_validator("sink_url")
    @classmethod
    def _known_sink(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value


_STORY_NAMES = {"max_buffered_records": "buffer_size"}
"""Fields the story's interface names differently, so an error names what the caller wrote."""


def load_settings(cls: type[_S], **overrides: Any) -> _S:
    """Build ``cls`` from the environment and ``overrides``; invalid values raise ConfigError.

    ``None`` overrides are ignored, so CLI flags left unset fall through to the environment.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as e:
        raise ConfigError(_describe(e, given)) from e


def _describe(error: ValidationError, given: dict[str, Any]) -> str:
    parts = []
    for err in error.errors():
        if not err["loc"]:  # a check across fields: its message names them
            parts.append(err["msg"].removeprefix("Value error, "))
            continue
        field = str(err["loc"][0])
        if field not in given and _STORY_NAMES.get(field) in given:
            field = _STORY_NAMES[field]
        where = field if field in given else f"{_ENV_PREFIX}{field.upper()}"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{where}: {err['msg']}{shown}")
    return "invalid setting " + "; ".join(parts)
