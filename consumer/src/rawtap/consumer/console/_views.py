"""The console's pages: each reads through the ``Store`` and renders one template.

Handlers are plain functions (Starlette runs them in its thread pool), since the
stores' drivers are synchronous; the store serialises its own connection.
"""

import re
import shlex
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rawtap.consumer.console._body import body_view
from rawtap.consumer.console._explain import explain_end_state
from rawtap.consumer.console._filters import cursor, parse_cursor, parse_filters
from rawtap.consumer.console._overview import FACTS_LIMIT, build_overview
from rawtap.consumer.console._render import templates
from rawtap.consumer.console._settings import ConsoleSettings
from rawtap.consumer.console._timeline import timeline
from rawtap.consumer.console._traces import trace_link
from rawtap.consumer.store import RecordQuery, RecordSummary, Store, StoredRecord
from rawtap.shared import BodyDecodeError, decode_bounded

DOWNLOAD_LIMIT = 64 << 20
"""Decoded bytes a download gives at most (a compression bomb stops there)."""

DECODING_AT_ONCE = 2
"""Decoded downloads served at once (each may hold :data:`DOWNLOAD_LIMIT` bytes); more get 503."""

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class NotFound(Exception):
    """The page names something the store does not hold (answered 404)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of summaries and the link to the next (None on the last page)."""

    rows: list[RecordSummary]
    next_link: str | None


class Views:
    """The handlers, bound to one store and its settings."""

    def __init__(self, store: Store, settings: ConsoleSettings) -> None:
        """Serve ``store`` (opened read-only by the caller) with ``settings``."""
        self.store = store
        self.settings = settings
        self.templates = templates()
        self._decoding = threading.BoundedSemaphore(DECODING_AT_ONCE)

    def _render(
        self, request: Request, name: str, status: int = 200, **context: object
    ) -> Response:
        context.setdefault("settings", self.settings)
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def home(self, request: Request) -> Response:
        """``/``: the calls page."""
        return RedirectResponse("/calls", status_code=302)

    def calls(self, request: Request) -> Response:
        """``/calls``: matching records, newest first, a page at a time."""
        filters = parse_filters(request.query_params)
        size = self.settings.page_size
        after = parse_cursor(request.query_params.get("before"))
        rows = self.store.summaries(filters.query, limit=size + 1, newest_first=True, after=after)
        more = len(rows) > size
        rows = rows[:size]
        next_link = (
            filters.link(before=cursor(rows[-1].started_at_ns, rows[-1].record_id))
            if more
            else None
        )
        return self._render(
            request,
            "calls.html",
            filters=filters,
            page=Page(rows, next_link),
            paged=after is not None,
            facets=self.store.facets(),
        )

    def _stored(self, request: Request) -> StoredRecord:
        record_id = request.query_params.get("id", "")
        stored = self.store.get_stored(record_id) if record_id else None
        if stored is None:
            raise NotFound(f"no record with id {record_id!r}")
        return stored

    def call(self, request: Request) -> Response:
        """``/call?id=…``: one record, its bodies, timeline, derived fields and attempts."""
        stored = self._stored(request)
        r, d = stored.record, stored.derived
        response = body_view(
            r.body,
            content_encoding=r.header("content-encoding"),
            content_type=r.header("content-type"),
            stream=r.stream,
        )
        request_headers = {k.lower(): v for k, v in r.request_headers}
        sent = body_view(
            r.request_body,
            content_encoding=request_headers.get("content-encoding"),
            content_type=request_headers.get("content-type"),
            stream=False,
        )
        attempts = (
            self.store.summaries(
                RecordQuery(call_id=r.call_id),
                limit=self.settings.attempts_limit,
                newest_first=False,
            )
            if r.call_id
            else []
        )
        sink = shlex.quote(self.settings.sink_url)
        hidden = "***" in self.settings.sink_url
        rid = shlex.quote(r.record_id)
        commands = [
            ("show", f"rawtap show {rid} --sink {sink}"),
            ("replay", f"rawtap replay --sink {sink} --record {rid}"),
            ("export", f"rawtap export --sink {sink} --record {rid} --derived"),
        ]
        return self._render(
            request,
            "call.html",
            stored=stored,
            record=r,
            derived=d,
            response=response,
            sent=sent,
            attempts=attempts,
            timeline=timeline(r, d.ttft_ns if d else None),
            trace=trace_link(self.settings.trace_url, r.traceparent),
            end_state_text=explain_end_state(r.end_state.value),
            commands=commands,
            password_hidden=hidden,
        )

    def body(self, request: Request) -> Response:
        """``/call/body?id=…``: the response (or ``part=request``) body as a download."""
        stored = self._stored(request)
        r = stored.record
        part = request.query_params.get("part", "response")
        if part == "request":
            data = r.request_body
            encoding = next(
                (v for k, v in r.request_headers if k.lower() == "content-encoding"), None
            )
        else:
            part, data, encoding = "response", r.body, r.header("content-encoding")
        suffix = "bin"
        if request.query_params.get("decoded") and encoding:
            if not self._decoding.acquire(blocking=False):
                return Response(
                    "busy decoding other downloads; try again\n", status_code=503,
                    media_type="text/plain", headers={"retry-after": "1"},
                )  # fmt: skip
            try:
                data, whole = decode_bounded(data, encoding, DOWNLOAD_LIMIT)
            except BodyDecodeError as e:
                return Response(f"{e}\n", status_code=422, media_type="text/plain")
            finally:
                self._decoding.release()
            if not whole:
                return Response(
                    f"the decoded body is over {DOWNLOAD_LIMIT:,} bytes; download it as stored\n",
                    status_code=413,
                    media_type="text/plain",
                )
            suffix = "decoded.bin"
        name = _SAFE_NAME.sub("_", r.record_id)[:100] or "record"
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{name}.{part}.{suffix}"'},
        )

    def session(self, request: Request) -> Response:
        """``/session?id=…``: every call of one session, oldest first."""
        session_id = request.query_params.get("id", "")
        if not session_id:
            raise NotFound("no session id given")
        size = self.settings.page_size
        after = parse_cursor(request.query_params.get("after"))
        rows = self.store.summaries(
            RecordQuery(session_id=session_id), limit=size + 1, newest_first=False, after=after
        )
        more = len(rows) > size
        rows = rows[:size]
        next_link = None
        if more:
            last = rows[-1]
            after_last = cursor(last.started_at_ns, last.record_id)
            next_link = "?" + urlencode({"id": session_id, "after": after_last})
        if not rows and after is None:
            raise NotFound(f"no calls in session {session_id!r}")
        return self._render(
            request,
            "session.html",
            session_id=session_id,
            page=Page(rows, next_link),
            paged=after is not None,
        )

    def overview(self, request: Request) -> Response:
        """``/overview``: calls, errors, tokens and latency over time (default: the last 24 h)."""
        filters = parse_filters(request.query_params, default_since="24h")
        now = time.time_ns()
        query = filters.query
        facts = self.store.call_facts(query, FACTS_LIMIT)
        since = (
            query.since_ns
            if query.since_ns is not None
            else min((f.started_at_ns for f in facts), default=now - 86_400 * 10**9)
        )
        until = query.until_ns if query.until_ns is not None else now
        return self._render(
            request,
            "overview.html",
            filters=filters,
            overview=build_overview(facts, since, max(until, since + 1)),
            facets=self.store.facets(),
        )

    def health(self, request: Request) -> Response:
        """``/healthz``: ``ok`` when the store answers a count."""
        self.store.count_matching(RecordQuery(since_ns=time.time_ns()))
        return Response("ok\n", media_type="text/plain")
