"""Redaction of credentials in what the tap records; the wire is never touched.

Header values of credential headers are replaced, ``key=`` query parameters
are blanked in the URL, and every credential value found that way (at least
``MIN_SECRET_LEN`` bytes) is masked wherever it is echoed in the request or
response body. Body masks keep the secret's length so that stream chunk
boundaries and sizes stay true.
"""

import re
from collections.abc import Iterable, Sequence

REDACTED = "[REDACTED]"
"""What replaces a credential in headers and URLs."""

MIN_SECRET_LEN = 8
"""Shorter credential values are not searched for in bodies (too likely to hit other text)."""

CREDENTIAL_HEADERS = frozenset(
    {
        b"authorization",
        b"proxy-authorization",
        b"x-api-key",
        b"x-goog-api-key",
        b"api-key",
        b"cookie",
        b"set-cookie",
    }
)
"""Lower-case names of headers whose values never reach a record."""

_COOKIE_HEADERS = frozenset({b"cookie", b"set-cookie"})
_SCHEMES = (b"bearer ", b"basic ", b"token ")
_KEY_PARAM = re.compile(r"([?&](?:key|api[_-]?key)=)([^&#]*)", re.IGNORECASE)


def redact_header_value(lower_name: bytes, value: bytes, secrets: list[bytes]) -> str:
    """The recorded form of a credential header's value; its secret goes to ``secrets``."""
    if lower_name in _COOKIE_HEADERS:
        return REDACTED
    lowered = value[:7].lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            token = value[len(scheme) :].strip()
            if token:
                secrets.append(token)
            return value[: len(scheme)].decode("latin-1") + REDACTED
    token = value.strip()
    if token:
        secrets.append(token)
    return REDACTED


def response_headers_for_record(
    items: Iterable[tuple[bytes, bytes, bytes]], secrets: list[bytes]
) -> tuple[list[tuple[str, str]], bytes]:
    """``(raw_name, lower_name, value)`` triples as recorded, and the content type.

    Values are latin-1 text, credentials redacted.
    """
    out: list[tuple[str, str]] = []
    append = out.append
    content_type = b""
    for raw_name, lower_name, value in items:
        if lower_name in CREDENTIAL_HEADERS:
            append((raw_name.decode("latin-1"), redact_header_value(lower_name, value, secrets)))
            continue
        if lower_name == b"content-type":
            content_type = value
        append((raw_name.decode("latin-1"), value.decode("latin-1")))
    return out, content_type


def redact_url(url: str, secrets: list[bytes]) -> str:
    """``url`` with ``key=``/``api_key=`` query values redacted; the values go to ``secrets``."""
    if "key=" not in url.lower():
        return url

    def repl(match: "re.Match[str]") -> str:
        value = match.group(2)
        if value:
            secrets.append(value.encode("latin-1", "replace"))
        return match.group(1) + REDACTED

    return _KEY_PARAM.sub(repl, url)


def mask(secret: bytes) -> bytes:
    """A same-length stand-in for ``secret`` in a body: ``[REDACTED***]`` or stars."""
    n = len(secret)
    marker = b"[REDACTED" + b"*" * max(0, n - 10) + b"]"
    return marker if len(marker) == n else b"*" * n


def usable_secrets(secrets: list[bytes]) -> list[bytes]:
    """The distinct secrets worth searching bodies for, longest first."""
    return sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)


def redact_body(body: bytes, secrets: Sequence[bytes]) -> bytes:
    """``body`` with every secret masked (same length)."""
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, mask(secret))
    return body


def redact_chunks(chunks: list[bytes], secrets: Sequence[bytes]) -> list[bytes]:
    """``chunks`` with every secret masked, also where one spans a chunk boundary.

    Returns ``chunks`` itself (not a copy) in the common case where no secret
    occurs; otherwise new chunks of the same sizes.
    """
    if not chunks or not secrets:
        return chunks
    joined = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not any(secret in joined for secret in secrets):
        return chunks
    redacted = redact_body(joined, secrets)
    out: list[bytes] = []
    pos = 0
    for chunk in chunks:
        size = len(chunk)
        out.append(redacted[pos : pos + size])
        pos += size
    return out


def redact_text(text: str, secrets: Sequence[bytes]) -> str:
    """``text`` (a URL, an error message) with every secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        value = secret.decode("latin-1")
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_header_values(
    headers: list[tuple[str, str]], secrets: Sequence[bytes]
) -> list[tuple[str, str]]:
    """``headers`` with secrets echoed in any value replaced; the same list when none is."""
    joined = "\n".join([value for _, value in headers])
    for secret in secrets:
        if secret.decode("latin-1") in joined:
            break
    else:
        return headers
    return [(name, redact_text(value, secrets)) for name, value in headers]
