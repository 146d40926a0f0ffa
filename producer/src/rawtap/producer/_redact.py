"""Credentials out of every record, on the writer thread; the wire is never touched.

The caller's path (the tap, ``Recorder.record``) only hands over references;
:func:`redact` runs inside ``serialize`` and decides what is stored:

* headers whose **name** looks like a credential (:class:`NameRule`) keep their
  name and auth scheme, their value becomes ``[REDACTED]``;
* in the URL, the user-info password, query parameters with credential names,
  a path segment after a credential-named segment (``/key/<v>``) and path
  segments shaped like well-known API keys;
* every credential value found that way (at least ``MIN_SECRET_LEN`` bytes), in
  its plain, URL-encoded and JSON-escaped spellings, and for Basic auth the
  decoded ``user:pass`` and password, is masked wherever it reappears: URL,
  header values, request body, response body (over the whole body, so across
  chunk boundaries; decoded first when it has a ``Content-Encoding``), error text.

Body masks keep the length of what they replace, so chunk sizes stay true. The
record says what was masked (``masked``, ``masked_in``), never the value, and
carries keyed digests of the longer secrets (``masked_digests``) so that the
consumer can mask a secret that only the derived text joins together (a key
echoed over several stream deltas). See docs/reliability.md.
"""

import base64
import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from rawtap.shared import BodyDecodeError, decode_bounded, decode_chunks

REDACTED = "[REDACTED]"
"""What replaces a credential in headers, URLs and error text."""

MIN_SECRET_LEN = 8
"""Shorter credential values are not searched for elsewhere (too likely to hit other text)."""

DIGEST_MIN_LEN = 16
"""Secrets at least this long get a digest for the consumer (short ones could be guessed)."""

_EXACT_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
# A name is split into words at - _ . ; any of these words marks a credential. Words,
# not substrings: ``*token*`` would swallow the rate-limit headers (``x-ratelimit-
# remaining-tokens``) a record exists to keep.
_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "auth",
        "credential",
        "credentials",
        "signature",
        "sig",
    }
)
_WORD_ENDS = ("key", "token", "secret")  # accesstoken, apikey, clientsecret
_NOT_CREDENTIALS = frozenset({"idempotency-key"})  # a per-request id the SDKs send
_SPLIT = re.compile(r"[-_.]")
_COOKIE_NAMES = frozenset({"cookie", "set-cookie"})
_SCHEMES = ("bearer", "basic", "token", "apikey", "key", "digest", "negotiate", "sso-key")
# Shapes of well-known API keys, looked for in URL path segments.
_KEY_SHAPES = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|hf_[A-Za-z0-9]{30,})"
)
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]*)=([^&#;]*)")


class NameRule:
    """Which header and query-parameter names carry credentials.

    The defaults (see the module docstring) plus ``extra``: exact names or
    ``fnmatch`` patterns (``x-my-*``), case-insensitive (``RAWTAP_REDACT_NAMES``).
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._exact = set(_EXACT_NAMES)
        self._patterns: list[str] = []
        for given in extra:
            name = given.strip().lower()
            if not name:
                continue
            if any(c in name for c in "*?["):
                self._patterns.append(name)
            else:
                self._exact.add(name)
        self._cache: dict[str, bool] = {}

    def __call__(self, lower: str) -> bool:
        """True when a header or parameter called ``lower`` (lower case) holds a credential."""
        return self.judge_cached(lower)

    def judge_cached(self, lower: str) -> bool:
        """:meth:`__call__` (the method itself, for a loop to hold)."""
        hit = self._cache.get(lower)
        if hit is None:
            hit = self._judge(lower)
            if len(self._cache) < 4096:  # bounded: names come from the wire
                self._cache[lower] = hit
        return hit

    def _judge(self, lower: str) -> bool:
        if lower in self._exact:
            return True
        if any(fnmatch.fnmatchcase(lower, p) for p in self._patterns):
            return True
        if lower in _NOT_CREDENTIALS:
            return False
        return any(w in _WORDS or w.endswith(_WORD_ENDS) for w in _SPLIT.split(lower) if w)


@functools.lru_cache(maxsize=16)
def name_rule(extra: tuple[str, ...] = ()) -> NameRule:
    """The (shared, cached) rule for a recorder's ``redact_names`` setting."""
    return NameRule(extra)


def mask(secret: bytes) -> bytes:
    """A same-length stand-in for ``secret`` in a body: ``[REDACTED***]`` or stars."""
    n = len(secret)
    marker = b"[REDACTED" + b"*" * max(0, n - 10) + b"]"
    return marker if len(marker) == n else b"*" * n


class Masking:
    """What one record's redaction found: the secrets, and the count and places masked."""

    __slots__ = ("count", "places", "secrets", "variants")

    def __init__(self) -> None:
        self.secrets: list[bytes] = []
        self.count = 0
        self.places: list[str] = []
        self.variants: list[bytes] = []

    def hit(self, place: str, n: int = 1) -> None:
        """``n`` values were masked in ``place``."""
        if n:
            self.count += n
            if place not in self.places:
                self.places.append(place)

    def add_secret(self, value: bytes) -> None:
        """A credential value the request carried (searched for everywhere else)."""
        value = value.strip()
        if len(value) >= MIN_SECRET_LEN:
            self.secrets.append(value)

    def seal(self) -> None:
        """Build the spellings to search for, longest first."""
        self.variants = _spellings(tuple(self.secrets))

    def digests(self, record_id: str) -> list[str]:
        """``"<length>:<hex>"`` keyed digests of the longer secrets (key: the record id)."""
        key = record_id.encode()[:64]
        out = []
        for secret in sorted(set(self.secrets)):
            if len(secret) >= DIGEST_MIN_LEN:
                digest = hashlib.blake2b(secret, key=key, digest_size=8).hexdigest()
                out.append(f"{len(secret)}:{digest}")
        return out


@functools.lru_cache(maxsize=256)
def _spellings(secrets: tuple[bytes, ...]) -> list[bytes]:
    # Cached: a service sends the same few keys over and over.
    spellings: set[bytes] = set()
    for secret in secrets:
        text = secret.decode("latin-1")
        spellings.add(secret)
        for other in (
            quote(text, safe=""),
            quote_plus(text, safe=""),
            _json_escaped(text),
            _json_escaped(text).replace("/", "\\/"),
        ):
            spellings.add(other.encode("latin-1", "replace"))
    return sorted(spellings, key=len, reverse=True)


def _json_escaped(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


# -- headers -------------------------------------------------------------------------


def _latin1(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _header_value(lower: str, value: str, found: Masking) -> str:
    """The recorded form of a credential header's value; its secrets go to ``found``."""
    if lower in _COOKIE_NAMES:
        for part in value.split(";"):
            _name, eq, cookie = part.partition("=")
            found.add_secret((cookie if eq else part).encode("latin-1", "replace"))
        return REDACTED
    scheme, space, token = value.strip().partition(" ")
    if space and scheme.lower() in _SCHEMES and token.strip():
        token = token.strip()
        found.add_secret(token.encode("latin-1", "replace"))
        if scheme.lower() == "basic":
            _basic_secrets(token, found)
        return f"{scheme} {REDACTED}"
    found.add_secret(value.encode("latin-1", "replace"))
    return REDACTED


def _basic_secrets(token: str, found: Masking) -> None:
    try:
        pair = base64.b64decode(token, validate=True)
    except ValueError:
        return
    found.add_secret(pair)
    _user, colon, password = pair.partition(b":")
    if colon:
        found.add_secret(password)


def headers(items: Iterable[Sequence[Any]], rule: NameRule, found: Masking) -> list[list[str]]:
    """Headers as recorded (``[name, value]``), credential values replaced.

    ``items`` are ``(name, value)`` pairs of ``str`` (``Recorder.record``) or the
    ``(raw_name, lower_name, value)`` byte triples httpx keeps (the tap).
    """
    out: list[list[str]] = []
    append = out.append
    judge = rule.judge_cached
    for item in items:
        if len(item) == 3:
            raw_name, lower_b, value_b = item
            name = raw_name.decode("latin-1") if type(raw_name) is bytes else _latin1(raw_name)
            value = value_b.decode("latin-1") if type(value_b) is bytes else _latin1(value_b)
            lower = lower_b.decode("latin-1") if type(lower_b) is bytes else name.lower()
        else:
            name, value = item[0], item[1]
            if type(name) is not str:
                name = _latin1(name)
            if type(value) is not str:
                value = _latin1(value)
            lower = name.lower()
        if judge(lower):
            append([name, _header_value(lower, value, found)])
            found.hit("headers")
        else:
            append([name, value])
    return out


def header_value(headers_: list[list[str]], lower: str) -> str | None:
    """The first value of header ``lower`` in recorded headers."""
    for name, value in headers_:
        if name.lower() == lower:
            return value
    return None


# -- the URL -------------------------------------------------------------------------


def url(text: str, rule: NameRule, found: Masking) -> str:
    """``text`` with user-info password, credential query values and path keys redacted."""
    redacted, secrets, count = _url_cached(text, rule)
    found.secrets.extend(secrets)
    if count:
        found.hit("url", count)
    return redacted


@functools.lru_cache(maxsize=512)
def _url_cached(text: str, rule: NameRule) -> tuple[str, tuple[bytes, ...], int]:
    # Cached: the same endpoints (and, for Gemini, the same ?key=) come back every call.
    found = Masking()
    return _url(text, rule, found), tuple(found.secrets), found.count


def _url(text: str, rule: NameRule, found: Masking) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    end = len(rest)
    for stop in "/?#":
        at_stop = rest.find(stop)
        if at_stop != -1:
            end = min(end, at_stop)
    authority, tail = rest[:end], rest[end:]
    at = authority.rfind("@")
    if at != -1:
        user, colon, password = authority[:at].partition(":")
        if colon and password:
            found.add_secret(unquote(password).encode("latin-1", "replace"))
            pair = f"{unquote(user)}:{unquote(password)}".encode("latin-1", "replace")
            found.add_secret(base64.b64encode(pair))
            authority = f"{user}:{REDACTED}{authority[at:]}"
            found.hit("url")
    path, qmark, query = tail.partition("?")
    fragment = ""
    if "#" in query:
        query, hash_, frag = query.partition("#")
        fragment = hash_ + frag
    elif not qmark and "#" in path:
        path, hash_, frag = path.partition("#")
        fragment = hash_ + frag
    path = _path(path, rule, found)
    if qmark and "=" in query:
        query = _QUERY_PAIR.sub(lambda m: _query_pair(m, rule, found), "&" + query)[1:]
    return f"{scheme}{sep}{authority}{path}{qmark}{query}{fragment}"


def _query_pair(match: "re.Match[str]", rule: NameRule, found: Masking) -> str:
    lead, name, value = match.group(1), match.group(2), match.group(3)
    if not value or not rule(unquote_plus(name).lower()):
        return match.group(0)
    found.add_secret(value.encode("latin-1", "replace"))
    found.add_secret(unquote_plus(value).encode("latin-1", "replace"))
    found.hit("url")
    return f"{lead}{name}={REDACTED}"


def _path(path: str, rule: NameRule, found: Masking) -> str:
    if not path or path == "/":
        return path
    segments = path.split("/")
    changed = False
    for i, segment in enumerate(segments):
        if not segment:
            continue
        after_name = i > 0 and segments[i - 1] and rule(unquote(segments[i - 1]).lower())
        if after_name and segments[i - 1] != REDACTED:
            value = segment
        else:
            shaped = _KEY_SHAPES.search(segment)
            if shaped is None:
                continue
            value = shaped.group(0)
        found.add_secret(value.encode("latin-1", "replace"))
        found.add_secret(unquote(value).encode("latin-1", "replace"))
        segments[i] = segment.replace(value, REDACTED)
        found.hit("url")
        changed = True
    return "/".join(segments) if changed else path


# -- echoes --------------------------------------------------------------------------


def mask_bytes(data: bytes, found: Masking) -> tuple[bytes, int]:
    """``data`` with every spelling of every secret masked (same length), and the count.

    A body that ends inside a secret (it was cut) has that partial secret masked too.
    """
    count = 0
    for variant in found.variants:
        if variant in data:
            count += data.count(variant)
            data = data.replace(variant, mask(variant))
    if data:
        last = data[-1]
        for variant in found.variants:
            # The longest prefix of the variant the data ends with (at least MIN_SECRET_LEN).
            for k in range(len(variant) - 1, MIN_SECRET_LEN - 1, -1):
                if variant[k - 1] == last and data.endswith(variant[:k]):
                    data = data[:-k] + b"*" * k
                    count += 1
                    break
    return data, count


def mask_text(text: str, found: Masking) -> tuple[str, int]:
    """``text`` with every spelling of every secret replaced by ``[REDACTED]``, and the count."""
    count = 0
    for variant in found.variants:
        value = variant.decode("latin-1")
        if value in text:
            count += text.count(value)
            text = text.replace(value, REDACTED)
    return text, count


def mask_headers(headers_: list[list[str]], found: Masking, place: str) -> None:
    """Secrets echoed in any header value replaced, in place (one search when none is)."""
    joined = "\n".join([pair[1] for pair in headers_])
    if not any(variant.decode("latin-1") in joined for variant in found.variants):
        return
    for pair in headers_:
        if pair[1] == REDACTED:
            continue
        pair[1], n = mask_text(pair[1], found)
        found.hit(place, n)


# -- the response body -----------------------------------------------------------------


class Body:
    """The response body as it will be stored, and what had to be done to it."""

    __slots__ = ("body", "chunks", "decoded_from", "encoded_size", "note")

    def __init__(self, body: bytes, chunks: list[list[int]]) -> None:
        self.body = body
        self.chunks = chunks
        self.decoded_from: str | None = None
        self.encoded_size: int | None = None
        self.note: str | None = None


def response_body(
    body: bytes,
    chunks: list[list[int]],
    coding: str | None,
    found: Masking,
    limit: int,
) -> Body:
    """The body with secrets masked; a compressed one is decoded first (at most ``limit``).

    Kept byte-exact (still compressed) when no secret is in it. Otherwise the
    decoded bytes are stored with the masks, and ``decoded_from`` names the
    coding that was undone. A body that cannot be checked (corrupt, missing
    library, decoding passes ``limit``) is stored decoded up to ``limit`` and
    masked, or withheld when it cannot be decoded at all.
    """
    out = Body(body, chunks)
    if not coding or not coding.strip() or coding.strip().lower() == "identity" or not body:
        out.body, n = mask_bytes(body, found)
        found.hit("body", n)
        return out
    try:
        decoded, complete = decode_bounded(body, coding, limit)
    except BodyDecodeError as e:
        out.body, out.chunks = b"", []
        out.encoded_size = len(body)
        out.note = (
            f"response body withheld: its Content-Encoding {coding!r} could not be "
            f"checked for credentials ({e})"
        )
        found.hit("body")
        return out
    masked, n = mask_bytes(decoded, found)
    if not n and complete:
        return out  # nothing to mask: the provider's bytes, unchanged
    out.decoded_from = coding
    out.encoded_size = len(body)
    out.body = masked
    found.hit("body", n)
    if not complete:
        out.note = (
            f"response body decoded from {coding!r} passed {limit} bytes; "
            f"its first {limit} decoded bytes are stored"
        )
    if chunks:
        out.chunks = _decoded_chunks(body, chunks, coding, len(masked), complete)
    return out


def _decoded_chunks(
    body: bytes, chunks: list[list[int]], coding: str, size: int, complete: bool
) -> list[list[int]]:
    """Chunk boundaries in the decoded body: each chunk keeps the bytes its arrival completed."""
    if not complete:
        return [[chunks[0][0], size]]  # past the cap only the first arrival time is kept
    pieces = []
    pos = 0
    for _offset, length in chunks:
        pieces.append(body[pos : pos + length])
        pos += length
    try:
        decoded = decode_chunks(pieces, coding)
    except BodyDecodeError:
        return [[chunks[0][0], size]]
    out = [[offset, len(piece)] for (offset, _), piece in zip(chunks, decoded, strict=False)]
    total = sum(c[1] for c in out)
    if total != size and out:
        out[-1][1] += size - total
    return out


# -- one record ------------------------------------------------------------------------


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
    mask_headers(out.request_headers, found, "headers")
    mask_headers(out.response_headers, found, "headers")
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
