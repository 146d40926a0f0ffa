"""rawtap console: what the providers sent, in a browser.

A read-only ASGI application (Starlette, Jinja templates, inline SVG charts, one
small script) over a ``Store``: the calls with filters and full-text search, one
call's headers, bodies (pretty or raw bytes), stream timeline and attempts, an
overview over time, and a session's calls. ``rawtap console`` serves it on
127.0.0.1; see docs/console.md.
"""

from rawtap.consumer.console._app import bind, create_app, serve
from rawtap.consumer.console._guard import allowed_hosts, check_bind, is_loopback
from rawtap.consumer.console._settings import ConsoleSettings
from rawtap.consumer.console._traces import DEFAULT_TRACE_URL, check_template, trace_link

__all__ = [
    "DEFAULT_TRACE_URL",
    "ConsoleSettings",
    "allowed_hosts",
    "bind",
    "check_bind",
    "check_template",
    "create_app",
    "is_loopback",
    "serve",
    "trace_link",
]
