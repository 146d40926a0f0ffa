"""Credentials out of request and response headers (by name, keeping the auth scheme)."""

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from rawtap.producer._redact._rules import REDACTED, Masking, NameRule

_COOKIE_NAMES = frozenset({"cookie", "set-cookie"})
_SCHEMES = ("bearer", "basic", "token", "apikey", "key", "digest", "negotiate", "sso-key")


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
