"""The calls page's filters: from the URL's query string to a ``RecordQuery``, and back.

Every filter is a query parameter, so a filtered view is a link to share. A bad
value becomes a one-line message on the page (the other filters still apply),
never an error page.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlencode

from rawtap.consumer.read import parse_time
from rawtap.consumer.store import RecordQuery
from rawtap.shared import ConfigError, EndState

FIELDS = (
    "since", "until", "provider", "model", "service", "session", "status", "end_state",
    "stream", "q", "call_id",
)  # fmt: skip
"""The query parameters the calls page reads (``before`` pages on; see :func:`cursor`)."""

_T = TypeVar("_T")
_STATUS = re.compile(r"^([1-5])xx$|^(\d{3})$")
_CURSOR = re.compile(r"(-?\d{1,19}):(.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters as given (for the form and links) and the query they make."""

    values: dict[str, str]
    query: RecordQuery
    problems: list[str] = field(default_factory=list)

    def link(self, **changes: str | None) -> str:
        """``?…`` for these filters with ``changes`` applied (None removes a parameter)."""
        merged = {**self.values, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v})

    @property
    def active(self) -> bool:
        """True when any filter narrows the records."""
        return any(self.values.get(k) for k in FIELDS)


def status_range(text: str) -> tuple[int, int]:
    """``404`` → (404, 405); ``5xx`` → (500, 600). Raises ConfigError."""
    m = _STATUS.match(text.strip().lower())
    if not m:
        raise ConfigError(f"status {text!r}: use a code (404) or a class (2xx, 4xx, 5xx)")
    if m.group(1):
        low = int(m.group(1)) * 100
        return low, low + 100
    code = int(m.group(2))
    return code, code + 1


def parse_filters(params: Mapping[str, str], *, default_since: str | None = None) -> Filters:
    """The filters in ``params``; unknown parameters are ignored, bad values reported."""
    values = {k: params[k].strip() for k in FIELDS if params.get(k, "").strip()}
    if default_since and "since" not in params:
        values["since"] = default_since
    problems: list[str] = []

    def checked(name: str, parse: Callable[[str], _T]) -> _T | None:
        if name not in values:
            return None
        try:
            return parse(values[name])
        except ConfigError as e:
            problems.append(str(e))
            values.pop(name)
            return None

    statuses = checked("status", status_range)
    query = RecordQuery(
        provider=values.get("provider"),
        model=values.get("model"),
        service=values.get("service"),
        session_id=values.get("session"),
        call_id=values.get("call_id"),
        text=values.get("q"),
        since_ns=checked("since", parse_time),
        until_ns=checked("until", parse_time),
        status_min=statuses[0] if statuses else None,
        status_max=statuses[1] if statuses else None,
        end_state=checked("end_state", _end_state),
        stream=checked("stream", _yes_no),
    )
    return Filters(values, query, problems)


def _end_state(text: str) -> str:
    states = sorted(e.value for e in EndState)
    if text not in states:
        raise ConfigError(f"end state {text!r}: use one of {', '.join(states)}")
    return text


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise ConfigError(f"stream {text!r}: use yes or no")
    return text == "yes"


def cursor(started_at_ns: int, record_id: str) -> str:
    """The ``before`` parameter that starts the next page after this row."""
    return f"{started_at_ns}:{record_id}"


def parse_cursor(text: str | None) -> tuple[int, str] | None:
    """The (started_at_ns, record_id) of a ``before`` parameter; None if absent or malformed."""
    m = _CURSOR.fullmatch(text or "")
    return (int(m.group(1)), m.group(2)) if m else None
