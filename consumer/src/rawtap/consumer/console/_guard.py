"""Who may read the console: loopback by default, a token for anything else.

Bodies are sensitive (prompts, answers, personal data), so the console binds
127.0.0.1 unless told otherwise, and any other bind needs a token, checked on
every request (``Authorization: Bearer <token>``, or HTTP basic auth with the
token as the password, which a browser asks for). Every response carries
headers that keep an attacker-controlled body inert: a Content-Security-Policy
that runs only the console's own script file, ``nosniff``, no framing, no
caching. The ``Host`` header is checked against the names the console answers
to, so a web page that rebinds its DNS name to 127.0.0.1 cannot read it; and a
request another site's page makes (an ``<img>``, a ``fetch``, a frame) is
refused by its ``Sec-Fetch-*`` headers, so no page can keep the console busy
behind the user's back. Following a link to the console still works.
"""

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rawtap.shared import ConfigError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from elsewhere: a ``<script>`` in a body cannot run."""

SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_PORT = re.compile(r":\d{1,5}")
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind
"""Binds to every interface: a Host header can then be any name the machine has."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a bind beyond loopback without a token (a one-line ConfigError)."""
    if token is not None and len(token) < 16:
        raise ConfigError("the console token must be at least 16 characters")
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the console on {host} without a token: recorded bodies are "
            "sensitive; set --token (or RAWTAP_CONSOLE_TOKEN), or bind 127.0.0.1"
        )


def allowed_hosts(bind: str, extra: Iterable[str]) -> frozenset[str] | None:
    """The Host names accepted, or None for any (a wildcard bind with a token and no list)."""
    names = {h.strip().strip("[]").lower() for h in extra if h.strip()}
    if bind in WILDCARDS and not names:
        return None
    return frozenset({*LOCAL_NAMES, bind.strip("[]").lower(), *names})


def _host_name(value: str) -> str:
    """The name of a Host header without its port ("" when malformed)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        return name if bracket and (not rest or _PORT.fullmatch(rest)) else ""
    if value.count(":") == 1:
        name, port = value.split(":")
        return name if _PORT.fullmatch(":" + port) else ""
    return value


def cross_site(headers: dict[str, str]) -> bool:
    """True for a request another site's page made, other than following a link to a page."""
    if headers.get("sec-fetch-site", "").lower() != "cross-site":
        return False
    navigating = headers.get("sec-fetch-mode", "").lower() == "navigate"
    return not (navigating and headers.get("sec-fetch-dest", "document").lower() == "document")


def token_matches(header: str, token: str) -> bool:
    """True when an ``Authorization`` header carries ``token`` (Bearer, or Basic's password)."""
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        given = value.strip()
    elif scheme == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


class Guard:
    """ASGI middleware: the Host check, the token check and the security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: frozenset[str] | None) -> None:
        """Wrap ``app``; ``hosts`` None accepts any Host header."""
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 400/401 or pass the request on, adding the headers to every response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if self.hosts is not None and _host_name(headers.get("host", "")) not in self.hosts:
            await _plain(secured, 400, "unknown Host header; start the console with --allowed-host")
            return
        if cross_site(headers):
            await _plain(secured, 403, "refused: a request made by another site's page")
            return
        if self.token and not token_matches(headers.get("authorization", ""), self.token):
            await _plain(
                secured, 401, "the console needs its token",
                [(b"www-authenticate", b'Basic realm="rawtap console", charset="UTF-8"')],
            )  # fmt: skip
            return
        await self.app(scope, receive, secured)


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
