"""Which names carry credentials, and the set of secrets one record revealed."""

import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

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

    __slots__ = (
        "count",
        "places",
        "probes",
        "secrets",
        "text_variants",
        "variant_bytes",
        "variants",
    )

    def __init__(self) -> None:
        self.secrets: list[bytes] = []
        self.count = 0
        self.places: list[str] = []
        self.variants: list[bytes] = []
        self.text_variants: list[str] = []
        """``variants`` as text (latin-1), for headers, URLs and error text."""
        self.probes: list[bytes] | None = None
        self.variant_bytes: frozenset[int] = frozenset()
        """Every byte value of the spellings (a text ending in another ends in no secret)."""
        """Per secret, a run of it that every spelling contains (None: search every spelling)."""

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
        self.variants, self.text_variants, self.probes = _spellings(tuple(self.secrets))
        self.variant_bytes = _byte_values(tuple(self.variants))

    def digests(self, record_id: str) -> list[str]:
        """``"<length>:<hex>"`` keyed digests of the longer secrets (key: the record id)."""
        long = [s for s in self.secrets if len(s) >= DIGEST_MIN_LEN]
        if not long:
            return []
        key = record_id.encode()[:64]
        out = []
        for secret in sorted(set(long)):
            if len(secret) >= DIGEST_MIN_LEN:
                digest = hashlib.blake2b(secret, key=key, digest_size=8).hexdigest()
                out.append(f"{len(secret)}:{digest}")
        return out


@functools.lru_cache(maxsize=256)
def _spellings(
    secrets: tuple[bytes, ...],
) -> tuple[list[bytes], list[str], list[bytes] | None]:
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
    ordered = sorted(spellings, key=len, reverse=True)
    probes = [_probe(secret) for secret in secrets]
    shortcut = None if any(p is None for p in probes) else sorted({p for p in probes if p})
    return ordered, [v.decode("latin-1") for v in ordered], shortcut


@functools.lru_cache(maxsize=256)
def _byte_values(variants: tuple[bytes, ...]) -> frozenset[int]:
    return frozenset(b for v in variants for b in v)


_UNRESERVED = re.compile(rb"[A-Za-z0-9_.~-]+")


def _probe(secret: bytes) -> bytes | None:
    """The longest run of ``secret`` no spelling escapes (quote, quote_plus, JSON), if long.

    Every spelling contains it, so a text without it holds no spelling at all: one
    search instead of one per spelling.
    """
    runs = _UNRESERVED.findall(secret)
    best = max(runs, key=len, default=b"")
    return best if len(best) >= MIN_SECRET_LEN else None


def _json_escaped(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
