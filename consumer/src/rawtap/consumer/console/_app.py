"""The console's ASGI application and the server that runs it."""

import socket
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from rawtap.consumer.console._guard import Guard
from rawtap.consumer.console._render import STATIC
from rawtap.consumer.console._settings import ConsoleSettings
from rawtap.consumer.console._views import NotFound, Views
from rawtap.consumer.store import SinkError, Store
from rawtap.shared import CodecError, scrub_text


def create_app(store: Store, settings: ConsoleSettings) -> ASGIApp:
    """The console over ``store`` (which the caller opened read-only and closes).

    :class:`Guard` wraps everything, Starlette's own error responses included, so
    no response leaves without the token check and the security headers.
    """
    views = Views(store, settings)
    pages = views.templates

    def problem(status: int, title: str) -> Callable[[Request, Exception], Response]:
        def handle(request: Request, exc: Exception) -> Response:
            return pages.TemplateResponse(
                request,
                "error.html",
                {
                    "title": title,
                    "message": scrub_text(" ".join(str(exc).split())),
                    "settings": settings,
                },
                status_code=status,
            )

        return handle

    routes = [
        Route("/", views.home),
        Route("/calls", views.calls),
        Route("/call", views.call),
        Route("/call/body", views.body),
        Route("/session", views.session),
        Route("/overview", views.overview),
        Route("/healthz", views.health),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            NotFound: problem(404, "Not found"),
            CodecError: problem(500, "The stored row is not a readable record"),
            SinkError: problem(503, "The store did not answer"),
            Exception: problem(500, "The console failed on this page"),
        },
    )
    return Guard(app, token=settings.token, hosts=settings.hosts)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), IPv4 or IPv6."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response's head and body, written apart, are not
    # held back for the client's delayed ACK (40 ms a request on a keep-alive connection).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
