"""``FakeProvider``: lifecycle, the SDK base URLs, routing requests to provider modules, the log.

Each request is resolved to a provider and API by its path, to a scenario by
its model name, and to an attempt number by its logical-call key; then either
a fault or the provider's normal reply is planned and handed to the
``ResponseWriter``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, unquote

from rawtap.tools.fake_provider import _anthropic, _gemini, _http, _openai, _openrouter
from rawtap.tools.fake_provider._http import ClientGone, Handler, ResponseWriter, Server
from rawtap.tools.fake_provider._log import Exchange, ExchangeLog, RecordedRequest
from rawtap.tools.fake_provider._reply import REASONS, Call, Reply
from rawtap.tools.fake_provider._scenario import (
    DEFAULT_SLOW_MS,
    RESET_BEFORE_HEADERS,
    RESET_MID_BODY,
    Scenario,
    ScenarioError,
    parse_scenario,
)

if TYPE_CHECKING:
    from google.genai.types import HttpOptions

_ROUTES = {
    "/v1/chat/completions": ("openai", "chat.completions"),
    "/v1/responses": ("openai", "responses"),
    "/api/v1/chat/completions": ("openrouter", "chat.completions"),
    "/v1/messages": ("anthropic", "messages"),
}
_GEMINI = re.compile(
    r"^/(?:v1beta|v1alpha|v1)/models/(?P<model>[^/:]+)"
    r":(?P<action>generateContent|streamGenerateContent)$"
)
_PLANNERS: dict[tuple[str, str], Callable[[Call], Reply]] = {
    ("openai", "chat.completions"): _openai.chat_completion,
    ("openai", "responses"): _openai.responses,
    ("openrouter", "chat.completions"): _openrouter.chat_completion,
    ("anthropic", "messages"): _anthropic.messages,
    ("gemini", "generateContent"): _gemini.generate,
    ("gemini", "streamGenerateContent"): _gemini.generate,
}


@dataclass(slots=True)
class _Route:
    """Where a request goes, and why it cannot be answered normally if it cannot."""

    provider: str = "unknown"
    api: str = "unknown"
    model: str = ""
    stream: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
    status: int = 200  # 404 / 405 for no route, 400 with ``problem``
    problem: str = ""


def _resolve(request: RecordedRequest) -> _Route:
    path = request.path
    route = _Route()
    if gemini := _GEMINI.match(path):
        route.provider, route.api = "gemini", gemini["action"]
        route.model = unquote(gemini["model"])
        route.stream = route.api == "streamGenerateContent"
        if route.stream and parse_qs(request.query).get("alt") != ["sse"]:
            route.status, route.problem = 400, "the fake provider streams Gemini only with alt=sse"
    elif path in _ROUTES:
        route.provider, route.api = _ROUTES[path]
    else:
        route.status = 404
        return route
    if request.method != "POST":
        route.status = 405
        return route
    try:
        payload = json.loads(request.body) if request.body else {}
    except ValueError as e:
        payload = None
        route.problem = route.problem or f"invalid JSON body: {e}"
    if isinstance(payload, dict):
        route.payload = payload
    elif payload is not None:
        route.problem = route.problem or "the request body is not a JSON object"
    if route.provider != "gemini":
        route.model = str(route.payload.get("model", ""))
        route.stream = route.payload.get("stream") is True
    if route.problem:
        route.status = 400
    return route


def _error_reply(
    provider: str, seq: int, status: int, model: str, retry_after_ms: int | None, detail: str = ""
) -> Reply:
    if provider == "anthropic":
        return _anthropic.error(seq, status, model, retry_after_ms, detail)
    if provider == "gemini":
        return _gemini.error(seq, status, model, detail)
    if provider == "openrouter":
        return _openrouter.error(seq, status, model, retry_after_ms, detail)
    return _openai.error(seq, status, model, retry_after_ms, detail)


class FakeProvider:
    """A local HTTP/1.1 server that answers like OpenAI, Anthropic, Gemini and OpenRouter.

    Use it as a context manager (or ``start()`` / ``close()``)::

        with FakeProvider() as provider:
            client = openai.OpenAI(api_key="sk-fake", base_url=provider.openai_base_url)
            client.chat.completions.create(model="fake-429-then-200", messages=[...])
            exchange = provider.last(path="/v1/chat/completions")

    ``slow_ms`` is the chunk delay of a bare ``slow`` option; ``reset_delay``
    the pause between the last bytes and a mid-body RST; ``retry_after_ms``
    the ``retry-after-ms`` header on retryable errors (``None`` sends no
    retry header, and the SDKs fall back to their own backoff);
    ``max_exchanges`` bounds the log (``None``: unbounded, ``0``: keep
    nothing, for benchmarks).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        slow_ms: int = DEFAULT_SLOW_MS,
        reset_delay: float = 0.05,
        retry_after_ms: int | None = 10,
        max_exchanges: int | None = None,
    ) -> None:
        self._address = (host, port)
        self.slow_ms = slow_ms
        self.reset_delay = reset_delay
        self.retry_after_ms = retry_after_ms
        self._log = ExchangeLog(max_exchanges)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve from a background thread (idempotent)."""
        if self._closed:
            raise RuntimeError("this FakeProvider was closed; make a new one")
        if self._server is None:
            self._server = Server(self._address, self._serve)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-provider",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, drop open connections and wait for their threads (idempotent)."""
        self._closed = True
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections(timeout)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, no trailing slash."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not started")
        return f"http://{self._server.server_name}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` (``…/v1``)."""
        return self.url + "/v1"

    @property
    def openrouter_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` talking to OpenRouter (``…/api/v1``)."""
        return self.url + "/api/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic`` (the SDK appends ``/v1/messages``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """``HttpOptions.base_url`` for ``google.genai.Client`` (it appends ``/v1/models/…``)."""
        return self.url

    def gemini_http_options(self, **kwargs: Any) -> HttpOptions:
        """``google.genai.types.HttpOptions`` aimed at this server; ``kwargs`` are passed on."""
        try:
            from google.genai.types import HttpOptions
        except ImportError:
            raise ImportError("gemini_http_options() needs google-genai installed") from None
        return HttpOptions(base_url=self.gemini_base_url, **kwargs)

    # the log -----------------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        """Every logged exchange in arrival order, once none is in flight (waits up to 5 s).

        A client can hold the last byte of a response before the serving
        thread has finished logging it, so reading the log waits for that.
        ``find(timeout=None)`` looks without waiting.
        """
        return self.find()

    def find(
        self,
        *,
        provider: str | None = None,
        api: str | None = None,
        path: str | None = None,
        model: str | None = None,
        scenario: str | None = None,
        status: int | None = None,
        stream: bool | None = None,
        timeout: float | None = 5.0,
    ) -> list[Exchange]:
        """Logged exchanges matching every given filter, oldest first.

        ``path`` is compared without the query string; ``scenario`` is the
        scenario's name (the model name after ``fake-``, or ``"normal"``).
        Exchanges still in flight are waited for, ``timeout`` seconds in all
        (``TimeoutError`` after that); ``timeout=None`` returns them as they
        are (``Exchange.done`` tells). ``status`` filters finished exchanges.
        """
        if timeout is not None:
            deadline = time.monotonic() + timeout
            for exchange in self._log.snapshot():
                exchange.wait(max(0.0, deadline - time.monotonic()))

        def matches(ex: Exchange) -> bool:
            return (
                (provider is None or ex.provider == provider)
                and (api is None or ex.api == api)
                and (path is None or ex.request.path == path)
                and (model is None or ex.model == model)
                and (scenario is None or ex.scenario.name == scenario)
                and (status is None or ex.status == status)
                and (stream is None or ex.stream == stream)
            )

        return [ex for ex in self._log.snapshot() if matches(ex)]

    def last(self, *, timeout: float = 5.0, **filters: Any) -> Exchange:
        """The newest exchange matching ``filters`` (as for ``find``), once it is done.

        ``LookupError`` when none matches, ``TimeoutError`` when it is still in
        flight after ``timeout`` seconds.
        """
        found = self.find(timeout=None, **filters)
        if not found:
            raise LookupError(f"no exchange matches {filters or 'anything'}")
        return found[-1].wait(timeout)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no logged exchange is in flight (``TimeoutError`` otherwise)."""
        self.find(timeout=timeout)

    def clear(self) -> None:
        """Forget every exchange and attempt count."""
        self._log.clear()

    def reset_attempts(self) -> None:
        """Forget attempt counts: the next request of each kind is a first attempt again."""
        self._log.reset_attempts()

    # serving -------------------------------------------------------------------------

    def _serve(self, handler: Handler) -> None:
        """Answer one request on ``handler``'s connection (called on its thread)."""
        started = time.time()
        request = RecordedRequest(
            method=handler.command,
            target=handler.path,
            headers=tuple((name, str(value)) for name, value in handler.headers.items()),
            body=handler.read_body(),
        )
        route = _resolve(request)
        try:
            scenario = parse_scenario(route.model, self.slow_ms)
        except ScenarioError as e:
            scenario = Scenario()
            if route.status == 200:
                route.status, route.problem = 400, str(e)
        key = (request.method, request.target, hashlib.sha256(request.body).digest())
        exchange = Exchange(
            seq=self._log.next_seq(),
            provider=route.provider,
            api=route.api,
            model=route.model,
            stream=route.stream,
            scenario=scenario,
            attempt=self._log.next_attempt(key),
            request=request,
            started=started,
        )
        self._log.add(exchange)
        writer = ResponseWriter(handler, exchange, self.reset_delay)
        try:
            self._answer(route, exchange, writer)
        except ClientGone as e:
            exchange.error = f"client closed the connection: {e}"
        finally:
            writer.finish()
            exchange.mark_done(time.time())

    def _answer(self, route: _Route, exchange: Exchange, writer: ResponseWriter) -> None:
        scenario = exchange.scenario
        faulty = scenario.fails(exchange.attempt)
        if route.status != 200:
            request = exchange.request
            detail = route.problem or f"the fake provider has no {request.method} {request.path}"
            reply = _error_reply(route.provider, exchange.seq, 400, route.model, None, detail)
            reply.status, reply.reason = route.status, REASONS[route.status]
        elif faulty and scenario.reset == RESET_BEFORE_HEADERS:
            exchange.reset = RESET_BEFORE_HEADERS
            writer.reset_now()
            return
        elif faulty and scenario.status is not None:
            reply = _error_reply(
                route.provider, exchange.seq, scenario.status, route.model, self.retry_after_ms
            )
        else:
            call = Call(
                seq=exchange.seq,
                provider=route.provider,
                api=route.api,
                model=route.model,
                stream=route.stream,
                body=exchange.request.body,
                payload=route.payload,
                scenario=scenario,
            )
            reply = _PLANNERS[(route.provider, route.api)](call)
        exchange.status = reply.status
        exchange.text = reply.text
        exchange.usage = reply.usage
        exchange.finish_reason = reply.finish_reason
        exchange.response_id = reply.response_id
        exchange.request_id = reply.request_id
        cut = faulty and scenario.reset == RESET_MID_BODY
        if cut:
            exchange.reset = RESET_MID_BODY
        writer.write(
            reply,
            gzip=scenario.gzip
            and _http.accepts_gzip(exchange.request.header("accept-encoding"), scenario.coding),
            trailer=scenario.gzip_trailer,
            coding=scenario.coding,
            delay=scenario.chunk_delay,
            cut=cut,
        )
