"""Showing URLs and messages without the passwords they carry.

Every URL rawtap prints or logs (Redis, Redis Cluster, PostgreSQL, SQLite) goes
through :func:`display_url`; text that may embed one (an exception message, a
log line, a libpq conninfo) goes through :func:`scrub_text`.
"""

import re

HIDDEN = "***"
"""What stands in for a password."""

_PASSWORD_PARAMS = re.compile(
    r"((?:^|[?&;])(?:password|passwd|pwd|pass|sslpassword|token|secret|api_?key|key)=)([^&;#]*)",
    re.IGNORECASE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()]+")
# libpq keyword/value conninfo: password=secret or password='with spaces'
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def display_url(url: str) -> str:
    """``url`` with the password of its user info and password-like query values hidden.

    ``postgresql://root:pw@db/x`` → ``postgresql://root:***@db/x``;
    ``rediss://:pw@h1:6379,h2:6379/0`` → ``rediss://:***@h1:6379,h2:6379/0``.
    A URL without credentials comes back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = len(rest)
    for stop in "?#":
        found = rest.find(stop)
        if found != -1:
            authority_end = min(authority_end, found)
    at = rest.rfind("@", 0, authority_end)
    if at != -1:
        user, colon, _password = rest[:at].partition(":")
        rest = f"{user}{':' + HIDDEN if colon else ''}{rest[at:]}"
    if "=" in rest:
        head, qmark, query = rest.partition("?")
        if qmark:
            query = _PASSWORD_PARAMS.sub(lambda m: m.group(1) + HIDDEN, query)
            rest = head + qmark + query
    return f"{scheme}{sep}{rest}"


def scrub_text(text: str) -> str:
    """``text`` with every URL in it shown by :func:`display_url` and conninfo passwords hidden."""
    if "://" in text:
        text = _URL.sub(lambda m: display_url(m.group(0)), text)
    if "password" in text.lower():
        text = _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + HIDDEN, text)
    return text
