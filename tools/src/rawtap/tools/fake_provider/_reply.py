"""What a provider module hands the server: one call in, one planned reply out.

Provider modules build bodies and headers; the server owns framing
(Content-Length or chunked), content coding, pacing and resets, so those
behave the same for every provider.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Any

from rawtap.tools.fake_provider._content import Usage
from rawtap.tools.fake_provider._scenario import Scenario

# Where in a provider's header list the server puts Content-Length or
# Transfer-Encoding (and Content-Encoding): real providers differ in order.
FRAMING = ("", "")

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a provider module sees it."""

    seq: int
    provider: str
    api: str
    model: str
    stream: bool
    body: bytes
    payload: dict[str, Any]
    scenario: Scenario

    @property
    def words(self) -> int:
        """How many words (output tokens) the reply carries."""
        return self.scenario.words


@dataclass(slots=True)
class Reply:
    """A planned response: status, headers and either a whole body or chunks."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    chunks: list[bytes] | None = None
    text: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    request_id: str | None = None

    @property
    def chunked(self) -> bool:
        """True when the entity goes out with chunked transfer-encoding."""
        return self.chunks is not None


def http_date() -> str:
    """The ``Date`` header value for now."""
    return email.utils.formatdate(usegmt=True)


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Site Overloaded",
}
