"""``rawtap console``: the web console over a store, read-only, on loopback by default."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._options import SinkUrl, open_store
from rawtap.shared import ConfigError, WorkerSettings, display_url, load_settings

TOKEN_ENV = "RAWTAP_CONSOLE_TOKEN"  # noqa: S105 - the variable's name, not a token
TRACE_ENV = "RAWTAP_TRACE_URL"
DEFAULT_TRACE_URL = "http://localhost:16686/trace/{trace_id}"
"""Jaeger's trace page (the console's own default, kept here so `rawtap --help` stays light)."""


@app.command()
def console(
    sink: SinkUrl = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", show_default=True, help="Address to listen on; beyond loopback needs --token."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, show_default=True, help="Port (0: any free one)."),
    ] = 8600,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            show_default="none (loopback only)",
            help=f"Asked of every request (Bearer, or basic auth's password); also ${TOKEN_ENV}.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            show_default="none",
            help="Read the token from this file (kept out of ps and the environment).",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host", help="Another Host name the console answers to (repeatable)."
        ),
    ] = None,
    trace_url: Annotated[
        str,
        typer.Option(
            "--trace-url",
            envvar=TRACE_ENV,
            show_default=True,
            help="Trace page URL template with {trace_id}; 'none' for no links.",
        ),
    ] = DEFAULT_TRACE_URL,
) -> None:
    """Browse the recorded calls in a web page (read-only; prints its URL)."""
    # Imported here: the web stack costs every other command nothing.
    from rawtap.consumer.console import (
        ConsoleSettings,
        allowed_hosts,
        bind,
        check_bind,
        check_template,
        create_app,
        serve,
    )

    if token_file is not None:
        if token:
            raise ConfigError("give the token with --token or --token-file, not both")
        token = _read_token(token_file)
    check_bind(host, token or None)
    template = None
    if trace_url.strip().lower() != "none":
        try:
            template = check_template(trace_url.strip())
        except ValueError as e:
            raise ConfigError(str(e)) from e
    url = load_settings(WorkerSettings, sink_url=sink).sink_url
    with open_store(url) as store:
        settings = ConsoleSettings(
            sink_url=display_url(url),
            token=token or None,
            hosts=allowed_hosts(host, allowed_host or []),
            trace_url=template,
        )
        try:
            sock = bind(host, port)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        notes = [f"store {display_url(url)}", "read-only"]
        if token:
            notes.append("token required")
        if host.strip("[]") in WILDCARDS:
            notes.append(f"listening on all interfaces ({host})")
        url_shown = _browse_url(host, sock.getsockname()[1])
        print(f"rawtap console: {url_shown} ({', '.join(notes)})", flush=True)
        serve(create_app(store, settings), sock)
        sys.stdout.flush()


WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names of binds, not a bind


def _browse_url(host: str, port: int) -> str:
    """The URL to open: a wildcard bind is reached on loopback; IPv6 in brackets."""
    name = host.strip().strip("[]")
    if name in WILDCARDS:
        name = "127.0.0.1" if name == "0.0.0.0" else "::1"  # noqa: S104
    return f"http://[{name}]:{port}/" if ":" in name else f"http://{name}:{port}/"


def _read_token(path: Path) -> str:
    """The token in ``path`` (its first line, without the line end)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the token file {str(path)!r}: {e}") from e
    lines = text.splitlines()
    return lines[0].strip() if lines else ""
