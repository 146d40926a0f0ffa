"""Credentials out of the URL.

The user-info password, query parameters with credential names, a path segment
after a credential-named segment (``/key/<v>``) and segments shaped like
well-known API keys.
"""

import base64
import functools
import re
from urllib.parse import unquote, unquote_plus

from rawtap.producer._redact._rules import REDACTED, Masking, NameRule

# Shapes of well-known API keys, looked for in URL path segments.
_KEY_SHAPES = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|hf_[A-Za-z0-9]{30,})"
)
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]*)=([^&#;]*)")


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
