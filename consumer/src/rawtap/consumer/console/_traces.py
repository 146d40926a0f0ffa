"""Links from a call to its trace in the user's tracing UI (Jaeger by default)."""

import re
from urllib.parse import quote

DEFAULT_TRACE_URL = "http://localhost:16686/trace/{trace_id}"
"""Jaeger's trace page; ``--trace-url`` takes any template with ``{trace_id}``."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent``, None when absent, malformed or all zeros."""
    m = _TRACEPARENT.match((traceparent or "").strip().lower())
    if not m or set(m.group(1)) == {"0"}:
        return None
    return m.group(1)


def trace_link(template: str | None, traceparent: str | None) -> str | None:
    """The URL of the trace, or None (no template, or no valid trace id recorded)."""
    tid = trace_id(traceparent)
    if not template or tid is None:
        return None
    return template.replace("{trace_id}", quote(tid, safe=""))


def check_template(template: str) -> str:
    """``template`` if it is an http(s) URL naming ``{trace_id}``; else ValueError."""
    if not template.startswith(("http://", "https://")) or "{trace_id}" not in template:
        raise ValueError(
            f"trace URL template {template!r}: use an http(s) URL with {{trace_id}} in it"
        )
    return template
