"""One record's parts with every credential masked (what :func:`redact_record` returns)."""

from typing import Any

from rawtap.producer._redact._body import mask_bytes, mask_headers, mask_text, response_body
from rawtap.producer._redact._headers import header_value, headers
from rawtap.producer._redact._rules import Masking, name_rule
from rawtap.producer._redact._url import url


class Redacted:
    """A record's parts as they will be stored, and what the redaction found."""

    __slots__ = (
        "body",
        "chunks",
        "decoded_from",
        "encoded_size",
        "error",
        "found",
        "request_body",
        "request_headers",
        "response_headers",
        "url",
    )

    def __init__(self, found: Masking, body: bytes, chunks: list[list[int]]) -> None:
        self.found = found
        self.body = body
        self.chunks = chunks
        self.request_body = b""
        self.request_headers: list[list[str]] = []
        self.response_headers: list[list[str]] = []
        self.url: str | None = None
        self.error: str | None = None
        self.decoded_from: str | None = None
        self.encoded_size: int | None = None

    def add_to(self, envelope: dict[str, Any], record_id: str) -> None:
        """Put what was masked into the envelope; nothing when nothing was (older readers)."""
        found = self.found
        if found.count:
            envelope["masked"] = found.count
            envelope["masked_in"] = found.places
        if found.secrets:
            digests = found.digests(record_id)
            if digests:
                envelope["masked_digests"] = digests
        if self.decoded_from is not None:
            envelope["body_decoded_from"] = self.decoded_from
        if self.encoded_size is not None:
            envelope["encoded_size"] = self.encoded_size


def redact_record(
    details: dict[str, Any],
    body: bytes,
    chunks: list[list[int]],
    request_body: bytes,
    max_record_bytes: int,
    redact_names: tuple[str, ...],
    errors: list[str],
) -> Redacted:
    """Every part of one record with its credentials masked; notes go to ``errors``."""
    rule = name_rule(redact_names)
    found = Masking()
    out = Redacted(found, body, chunks)
    out.request_body = request_body
    out.request_headers = headers(details.get("request_headers", ()), rule, found)
    out.response_headers = headers(details.get("response_headers", ()), rule, found)
    raw_url = details.get("url")
    if raw_url is not None:
        out.url = url(str(raw_url), rule, found)
    error = details.get("error")
    out.error = None if error is None else str(error)
    if not found.secrets:
        return out
    found.seal()
    if out.url:
        out.url, n = mask_text(out.url, found)
        found.hit("url", n)
    mask_headers(out.request_headers + out.response_headers, found, "headers")
    out.request_body, n = mask_bytes(request_body, found)
    found.hit("request_body", n)
    coding = header_value(out.response_headers, "content-encoding")
    stored = response_body(body, chunks, coding, found, max_record_bytes)
    out.body, out.chunks = stored.body, stored.chunks
    if stored.decoded_from is not None:
        out.response_headers = [
            h for h in out.response_headers if h[0].lower() != "content-encoding"
        ]
        out.decoded_from = stored.decoded_from
    out.encoded_size = stored.encoded_size
    if stored.note:
        errors.append(stored.note)
    if out.error:
        out.error, n = mask_text(out.error, found)
        found.hit("error", n)
    return out
