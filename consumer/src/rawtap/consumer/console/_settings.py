"""What one console serves and how: the store, who may read it, where traces live."""

from dataclasses import dataclass

from rawtap.consumer.console._traces import DEFAULT_TRACE_URL


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The console's options (``rawtap console`` fills them from its flags and environment)."""

    sink_url: str
    """The store's URL as shown in copied commands (no password: :func:`display_url`)."""
    token: str | None = None
    """Required on every request when set (Bearer, or basic auth's password)."""
    hosts: frozenset[str] | None = None
    """Host header names accepted; None accepts any (see :func:`allowed_hosts`)."""
    trace_url: str | None = DEFAULT_TRACE_URL
    """Template of a trace's URL with ``{trace_id}``; None shows no trace links."""
    page_size: int = 50
    attempts_limit: int = 50
