"""A store as the console meets it: a million realistic records, and how fast it reads.

:func:`fill_store` writes ``n`` records through the sink's own batch write path
(``Sink.write`` in batches of 2,000, derived fields from :func:`rawtap.consumer.derive`,
so the text preview and the search index are filled as a worker fills them). The
records are real :class:`~rawtap.shared.Record`\\ s spread over 30 days: four
providers with their models and wire formats (OpenAI and OpenRouter chat
completions, Anthropic messages, Gemini generateContent), JSON bodies of 1–2 KB and
SSE streams with their chunks, five services, 40,000 sessions, retried calls sharing
a ``call_id``, 4xx/5xx replies with error bodies, every end state. The response text
is drawn from a Zipf-weighted vocabulary (:data:`COMMON_WORD` is in nearly every
text, :data:`MIDDLE_WORD` in about 5 %), with a unique ticket number per record and,
in about one record in 20,000, :data:`RARE_WORD`.

:func:`measure_reads` times each read the console makes (the median of 5 runs, ms,
after one warm-up run): the first page, a page deep in the store via ``after``, each
filter, text searches, ``call_facts``, ``facets``, ``get_stored`` and a ``call_id``
lookup.

:func:`measure_write_cost` is what schema 5 costs a write (the search index, the
``call_id`` index, the filter indexes), through ``Sink.write`` into fresh stores.

``python -m bench._console_store URL N`` fills a store then measures it;
``python -m bench._console_store URL`` measures an existing one (``--freeze URL``: after
``gc.freeze()``, as a long-running console would run);
``python -m bench._console_store --write-cost [POSTGRES_URL]`` measures the write cost.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from rawtap.consumer import RecordQuery, Store, derive, open_sink
from rawtap.shared import Chunk, EndState, Record

DAY_NS = 86_400 * 1_000_000_000
SPAN_NS = 30 * DAY_NS
BATCH = 2_000

COMMON_WORD = "the"
MIDDLE_WORD = "zeppelin"
RARE_WORD = "quokka"

_MODELS = {
    "openai": ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini"),
    "anthropic": ("claude-sonnet-4-5", "claude-3-5-haiku"),
    "gemini": ("gemini-2.5-flash", "gemini-2.5-pro"),
    "openrouter": ("meta-llama/llama-3.3-70b-instruct", "mistralai/mistral-large"),
}
_PROVIDER_WEIGHTS = (("openai", 45), ("anthropic", 30), ("gemini", 15), ("openrouter", 10))
_SERVICES = ("checkout-api", "support-bot", "search", "batch-summarizer", "eval-runner", None)
_SERVICE_WEIGHTS = (30, 25, 20, 10, 5, 10)
_URLS = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "anthropic": "https://api.anthropic.com/v1/messages",
}
# (status, end state, weight): what the exchange came to.
_OUTCOMES = (
    (200, EndState.COMPLETE, 9_000),
    (200, EndState.CLOSED_EARLY, 200),
    (200, EndState.CANCELLED, 50),
    (200, EndState.ERROR, 100),
    (200, EndState.ABANDONED, 10),
    (429, EndState.COMPLETE, 300),
    (400, EndState.COMPLETE, 100),
    (401, EndState.COMPLETE, 30),
    (500, EndState.COMPLETE, 100),
    (503, EndState.COMPLETE, 60),
    (None, EndState.TRANSPORT_ERROR, 50),
)
_PARAGRAPH = (
    "the of and to a in is that for it as with was on be by this are or at from have an "
    "not but which they you we all can their has more one will would there been if when "
    "model request response token stream latency provider error retry timeout cache "
    "summary answer question customer order refund shipping invoice account password "
    "search result query index document page section table figure value number total "
    "python function class method return value string list dict error exception trace "
    "deploy service cluster node region database replica backup restore migration "
    "weather forecast rain sunny temperature wind humidity morning evening tomorrow "
    "recipe flour sugar butter oven minutes bake serve fresh garden tomato basil "
    "contract clause party agreement term notice payment liability warranty license "
    "patient symptom dose treatment clinic appointment insurance claim coverage"
)
_VOCABULARY = _PARAGRAPH.split()
_WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(_VOCABULARY))]
_MIDDLE_P = 0.05
_RARE_P = 1 / 20_000
_PRODUCERS = [f"{i:02x}" * 8 for i in range(8)]


class _Maker:
    """Builds the records of one fill, deterministically from a seed."""

    def __init__(self, seed: int, n: int, end_ns: int) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.start_ns = end_ns - SPAN_NS
        self.seq = dict.fromkeys(_PRODUCERS, 0)
        self.sessions = [f"sess-{seed}-{i:06d}" for i in range(40_000)]
        self.providers = [p for p, _ in _PROVIDER_WEIGHTS]
        self.provider_weights = [w for _, w in _PROVIDER_WEIGHTS]
        self.outcomes = [(s, e) for s, e, _ in _OUTCOMES]
        self.outcome_weights = [w for _, _, w in _OUTCOMES]
        # Texts are windows of one long Zipf-weighted draw (drawing each word is slow).
        self.pool = self.rng.choices(_VOCABULARY, _WEIGHTS, k=min(1 << 21, 300 * n + 1000))

    def text(self, words: int) -> str:
        rng = self.rng
        at = rng.randrange(len(self.pool) - words)
        out = self.pool[at : at + words]
        out.insert(rng.randrange(len(out)), f"ticket{rng.getrandbits(32):08x}")
        if MIDDLE_WORD not in out and rng.random() < _MIDDLE_P:
            out.insert(rng.randrange(len(out)), MIDDLE_WORD)
        if rng.random() < _RARE_P:
            out.insert(rng.randrange(len(out)), RARE_WORD.capitalize())
        return out[0].capitalize() + " " + " ".join(out[1:]) + "."

    def record(self, i: int, call: tuple[str, int] | None = None) -> Record:
        rng = self.rng
        provider = rng.choices(self.providers, self.provider_weights)[0]
        model = rng.choice(_MODELS[provider])
        status, end_state = rng.choices(self.outcomes, self.outcome_weights)[0]
        if call is not None and status is not None and status < 400:
            status, end_state = 200, EndState.COMPLETE
        stream = status == 200 and rng.random() < 0.4
        producer = rng.choice(_PRODUCERS)
        seq = self.seq[producer]
        self.seq[producer] = seq + 1
        started = self.start_ns + i * SPAN_NS // self.n + rng.randrange(1_000_000)
        call_id, attempt = call if call is not None else (f"call-{rng.getrandbits(64):016x}", 1)
        text = self.text(rng.randint(120, 260))
        request = orjson.dumps(
            {"model": model, "stream": stream, "max_tokens": 1024,
             "messages": [{"role": "user", "content": self.text(rng.randint(20, 60))}]}
        )  # fmt: skip
        url = _URLS.get(provider) or (
            "https://generativelanguage.googleapis.com/v1beta/models/"
            f"{model}:{'streamGenerateContent?alt=sse' if stream else 'generateContent'}"
        )
        tokens = (rng.randint(20, 4000), len(text) // 4, rng.choice((0, 0, 0, 128, 1024)))
        body, chunks = _body(provider, model, status, stream, text, tokens)
        if end_state is EndState.TRANSPORT_ERROR:
            body, chunks = b"", []
        elif chunks:
            body = b"".join(chunks)
        first = rng.randint(150_000_000, 1_500_000_000)
        duration = first + rng.randint(50_000_000, 20_000_000_000)
        chunk_marks: list[Chunk] = []
        if chunks:
            step = (duration - first) // len(chunks)
            chunk_marks = [Chunk(first + k * step, len(c)) for k, c in enumerate(chunks)]
        return Record(
            record_id=f"{started // 1_000_000:012x}{producer}{seq:012x}",
            producer_id=producer,
            seq=seq,
            session_id=rng.choice(self.sessions) if rng.random() < 0.8 else None,
            service=rng.choices(_SERVICES, _SERVICE_WEIGHTS)[0],
            call_id=call_id,
            attempt=attempt,
            provider=provider,
            method="POST",
            url=url,
            request_headers=[("content-type", "application/json"), ("user-agent", "bench/1")],
            request_body=request,
            status=status,
            response_headers=[("content-type", "text/event-stream" if stream else
                               "application/json"), ("x-request-id", f"req_{seq:x}")],
            body=body,
            stream=bool(chunks),
            chunks=chunk_marks,
            started_at_ns=started,
            first_byte_ns=None if status is None else first,
            ended_ns=duration,
            captured_at_ns=started + duration,
            end_state=end_state,
            error="connection refused" if status is None else None,
        )  # fmt: skip

    def records(self) -> Any:
        """Every record in start order; a failed call is retried once in 1 of 3."""
        retry: tuple[str, int] | None = None
        for i in range(self.n):
            record = self.record(i, retry)
            retry = None
            failed = record.status is None or record.status in (429, 500, 503)
            if failed and record.attempt == 1 and self.rng.random() < 0.33:
                retry = (record.call_id or "", 2)
            yield record


def _body(
    provider: str, model: str, status: int | None, stream: bool, text: str,
    tokens: tuple[int, int, int],
) -> tuple[bytes, list[bytes]]:  # fmt: skip
    if status is not None and status >= 400:
        message = {429: "Rate limit reached for requests", 400: "Invalid request: max_tokens",
                   401: "Incorrect API key provided", 500: "The server had an error",
                   503: "Service unavailable"}[status]  # fmt: skip
        if status == 503:
            return b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", []
        return orjson.dumps({"error": {"message": message, "type": "api_error"}}), []
    inp, out, cached = tokens
    words = text.split(" ")
    pieces = [" ".join(words[k : k + 6]) + " " for k in range(0, len(words), 6)]
    usage: dict[str, Any]
    if provider in ("openai", "openrouter"):
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
                 "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip
        if not stream:
            return orjson.dumps(
                {"id": "chatcmpl-x", "object": "chat.completion", "model": model,
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": text}}],
                 "usage": usage}
            ), []  # fmt: skip
        base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": model}
        deltas: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces
        ]
        deltas.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": usage})  # fmt: skip
        return b"", [b"data: " + orjson.dumps(e) + b"\n\n" for e in deltas] + [b"data: [DONE]\n\n"]
    if provider == "anthropic":
        usage = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": cached}
        if not stream:
            return orjson.dumps(
                {"id": "msg_x", "type": "message", "role": "assistant", "model": model,
                 "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                 "usage": usage}
            ), []  # fmt: skip
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_x", "type": "message", "role": "assistant", "model": model,
                "content": [], "usage": {"input_tokens": inp, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            *(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": p}})
              for p in pieces),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": out}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return b"", [f"event: {n}\ndata: ".encode() + orjson.dumps(d) + b"\n\n" for n, d in events]
    usage = {"promptTokenCount": inp, "candidatesTokenCount": out,
             "cachedContentTokenCount": cached}  # fmt: skip

    def piece(part: str, last: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": part}]}}
        if last:
            candidate["finishReason"] = "STOP"
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    if not stream:
        return orjson.dumps(piece(text, True)), []
    big = [" ".join(words[k : k + 24]) + " " for k in range(0, len(words), 24)]
    return b"", [
        b"data: " + orjson.dumps(piece(p, k == len(big) - 1)) + b"\n\n" for k, p in enumerate(big)
    ]


def fill_store(url: str, n: int, *, seed: int = 0) -> None:
    """Write ``n`` realistic records into the store at ``url`` (created if missing).

    Through ``Sink.write`` in batches of :data:`BATCH` with derived fields, as a
    worker writes them; the records end at the current time and span 30 days.
    """
    maker = _Maker(seed, n, time.time_ns())
    with open_sink(url) as store:
        batch: list[Record] = []
        for record in maker.records():
            batch.append(record)
            if len(batch) == BATCH:
                store.write(batch, time.time_ns(), [derive(r) for r in batch])
                batch = []
        if batch:
            store.write(batch, time.time_ns(), [derive(r) for r in batch])


def _median_ms(read: Callable[[], object], runs: int = 5) -> tuple[float, float]:
    """Median wall-clock and process-CPU ms of ``runs`` runs, after one warm-up run."""
    read()  # warm-up: the first run pays for cold pages and plans
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        read()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def measure_reads(url: str) -> list[tuple[str, float]]:
    """(read, median ms of 5 runs) for each read the console makes, on the store at ``url``."""
    return [(name, wall) for name, wall, _ in measure_reads_cpu(url)]


def measure_reads_cpu(url: str) -> list[tuple[str, float, float]]:
    """(read, median wall ms, median ms of this process's CPU) of each read, 5 runs each.

    On a shared machine the wall clock includes other processes' turns; the CPU time
    of this process is the read's own cost on SQLite (PostgreSQL's is in the server).
    """
    with open_sink(url, read_only=True) as store:
        return [(name, *_median_ms(read)) for name, read in _reads(store)]


def _reads(store: Store) -> list[tuple[str, Callable[[], object]]]:
    newest = store.summaries(RecordQuery(), limit=200)
    if not newest:
        raise ValueError("the store is empty: fill it first")
    oldest = store.summaries(RecordQuery(), limit=1, newest_first=False)[0]
    middle_ns = (newest[0].started_at_ns + oldest.started_at_ns) // 2
    deep = store.summaries(RecordQuery(until_ns=middle_ns), limit=1)[0]
    session = next(s.session_id for s in newest if s.session_id)
    call = next(s.call_id for s in newest if s.call_id)
    model = next(s.model for s in newest if s.model)
    facets = store.facets()
    service = facets["service"][0]
    reads: list[tuple[str, Callable[[], object]]] = [
        ("first page, unfiltered", lambda: store.summaries(RecordQuery())),
        ("page deep via after (mid-store)",
         lambda: store.summaries(RecordQuery(), after=(deep.started_at_ns, deep.record_id))),
        ("filter provider=anthropic", lambda: store.summaries(RecordQuery(provider="anthropic"))),
        (f"filter model={model}", lambda: store.summaries(RecordQuery(model=model))),
        ("filter status 500-599",
         lambda: store.summaries(RecordQuery(status_min=500, status_max=600))),
        ("filter end_state=cancelled (0.5 %)",
         lambda: store.summaries(RecordQuery(end_state="cancelled"))),
        ("filter end_state=closed_early + provider",
         lambda: store.summaries(RecordQuery(end_state="closed_early", provider="gemini"))),
        ("filter session", lambda: store.summaries(RecordQuery(session_id=session))),
        (f"filter service={service}", lambda: store.summaries(RecordQuery(service=service))),
        ("filter stream=true", lambda: store.summaries(RecordQuery(stream=True))),
        (f"text rare word ({RARE_WORD!r})", lambda: store.summaries(RecordQuery(text=RARE_WORD))),
        (f"text common word ({COMMON_WORD!r})",
         lambda: store.summaries(RecordQuery(text=COMMON_WORD))),
        (f"text middle word ({MIDDLE_WORD!r}, ~5 %)",
         lambda: store.summaries(RecordQuery(text=MIDDLE_WORD))),
        ("text two words ('refund zeppelin')",
         lambda: store.summaries(RecordQuery(text="refund zeppelin"))),
        ("text common word, page deep via after",
         lambda: store.summaries(RecordQuery(text=COMMON_WORD),
                                 after=(deep.started_at_ns, deep.record_id))),
        ("text rare word + provider",
         lambda: store.summaries(RecordQuery(text=RARE_WORD, provider="openai"))),
        ("call_facts(limit=20000)", lambda: store.call_facts(RecordQuery(), limit=20_000)),
        ("facets", store.facets),
        ("get_stored", lambda: store.get_stored(newest[7].record_id)),
        ("call_id lookup", lambda: store.summaries(RecordQuery(call_id=call))),
    ]  # fmt: skip
    return reads


def main(argv: list[str]) -> None:
    """``URL [N]``: fill (when N is given) then measure; ``--write-cost [POSTGRES_URL]``."""
    if argv[0] == "--write-cost":
        for kind, variant, rate, per_round in measure_write_cost(argv[1] if argv[1:] else None):
            rounds = ", ".join(f"{r:,.0f}" for r in per_round)
            print(f"{kind:10s} {rate:8,.0f} records/s  {variant}  ({rounds})")
        return
    if argv[0] == "--freeze":
        # What a long-running console would do after starting (as the worker does):
        # move what exists out of the collector's way, so that the 40,000 objects a
        # call_facts(20000) makes do not set off full collections over the imports.
        import gc

        gc.freeze()
        argv = argv[1:]
    url = argv[0]
    if len(argv) > 1:
        started = time.perf_counter()
        fill_store(url, int(argv[1]))
        print(f"filled {int(argv[1]):,} records in {time.perf_counter() - started:.0f} s")
    for name, wall, cpu in measure_reads_cpu(url):
        print(f"{wall:8.2f} ms  (cpu {cpu:7.2f})  {name}")


# -- the write cost of schema 5 ------------------------------------------------------------

_SQLITE_WITHOUT = {
    "search": [
        "DROP TRIGGER records_fts_insert",
        "DROP TRIGGER records_fts_update",
        "DROP TRIGGER records_fts_delete",
    ],
    "call_id index": ["DROP INDEX records_call"],
    "filter indexes": [
        "DROP INDEX records_service",
        "DROP INDEX records_end_state",
        "DROP INDEX records_status",
        "DROP INDEX records_started",
        "CREATE INDEX records_started ON records (started_at_ns)",
    ],
}
_POSTGRES_WITHOUT = {
    "search": ["ALTER TABLE records DROP COLUMN text_words"],
    "call_id index": ["DROP INDEX records_call"],
    "filter indexes": [
        "DROP INDEX records_service",
        "DROP INDEX records_end_state",
        "DROP INDEX records_status",
        "DROP INDEX records_started",
        "CREATE INDEX records_started ON records (started_at)",
    ],
}
WRITE_VARIANTS = (
    ("schema 5", 0),
    ("without search", 1),
    ("without search, call_id index", 2),
    ("without any index of 0005 (schema 4's indexes)", 3),
)
"""(name, how many of the removals above apply, in order)."""


def measure_write_cost(
    postgres_url: str | None, n: int = 20_000, rounds: int = 3, batch: int = 500
) -> list[tuple[str, str, float, list[float]]]:
    """(store, variant, median records/s, per round) of ``Sink.write`` into fresh stores.

    The same pre-built records and derived fields, in batches of ``batch`` (the
    worker's default), into schema 5 and into it with parts removed (the variants of
    :data:`WRITE_VARIANTS`), interleaved round by round (A B C D, D C B A, …).
    """
    import tempfile
    import uuid

    import psycopg
    import psycopg.sql

    maker = _Maker(1, n, time.time_ns())
    records = list(maker.records())
    derived = [derive(r) for r in records]
    stores = ["sqlite"] + (["postgresql"] if postgres_url else [])
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rawtap-bench-console-") as tmp:
        for rnd in range(rounds):
            order = list(WRITE_VARIANTS) if rnd % 2 == 0 else list(WRITE_VARIANTS)[::-1]
            for kind in stores:
                for name, removed in order:
                    if kind == "sqlite":
                        url = f"sqlite:///{tmp}/w{uuid.uuid4().hex}.db"
                        removals = _SQLITE_WITHOUT
                    else:
                        assert postgres_url is not None
                        schema = f"rawtap_bench_{uuid.uuid4().hex[:12]}"
                        url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
                        removals = _POSTGRES_WITHOUT
                    with open_sink(url) as store:
                        for part in list(removals)[:removed]:
                            for statement in removals[part]:
                                store.execute(statement)  # type: ignore[attr-defined]
                        started = time.perf_counter()
                        for i in range(0, n, batch):
                            store.write(records[i : i + batch], 1, derived[i : i + batch])
                        rates.setdefault((kind, name), []).append(
                            n / (time.perf_counter() - started)
                        )
                    if kind == "postgresql" and postgres_url is not None:
                        with psycopg.connect(postgres_url, autocommit=True) as conn:
                            drop = psycopg.sql.SQL("DROP SCHEMA {} CASCADE")
                            conn.execute(drop.format(psycopg.sql.Identifier(schema)))
    return [(k, v, statistics.median(r), r) for (k, v), r in rates.items()]


if __name__ == "__main__":
    main(sys.argv[1:])
