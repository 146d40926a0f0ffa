"""rawtap.consumer.fake_provider: a local server that answers like the LLM providers, byte for byte.

For tests, ``rawtap demo`` and benchmarks on machines that cannot reach a
provider: the real SDKs (``openai``, ``anthropic``, ``google-genai``) are
pointed at it and cannot tell the difference. It needs only the standard
library.

The public surface::

    FakeProvider     the server (context manager); base URLs per SDK; the exchange log
    Exchange         one request and every byte written back, plus what the reply says
    RecordedRequest  the request as read: method, target, headers, body
    Usage            the token counts a reply reports
    Scenario         what the server does for a request; parse_scenario(model) reads one,
                     ScenarioError says why a ``fake-…`` name is not understood
    reply_text       the reply text of ``n`` words (default 12)

Endpoints (HTTP/1.1, keep-alive; JSON replies carry Content-Length, streams
are chunked, one SSE event per chunk)::

    POST /v1/chat/completions            OpenAI chat completions; stream ends with data: [DONE]
    POST /v1/responses                   OpenAI Responses API; stream ends with response.completed
    POST /api/v1/chat/completions        OpenRouter: OpenAI's format plus ": OPENROUTER PROCESSING"
                                         comments (streams) or newline padding (JSON, sent chunked)
    POST /v1/messages                    Anthropic messages; message_start … message_stop
    POST /v1/models/{model}:generateContent                     Gemini (google-genai 3.x
    POST /v1/models/{model}:streamGenerateContent?alt=sse        uses v1; v1beta and
                                                                 v1alpha answer the same)
    GET  /_fake/health                   200 "ok" (not logged), for processes waiting on it

Scenarios are chosen by the model name, which every SDK passes through as is
(the JSON body's ``model``; Gemini's URL path). Any model name that does not
start with ``fake-`` is the normal scenario. Otherwise the rest is one or more
``+``-joined options::

    normal                  a normal reply (same as any other model name)
    429, 500                every attempt fails with that status and the
    (also 400 401 503 529)  provider's own error body; retryable ones carry
                            ``retry-after-ms: 10`` and ``retry-after: 0``
                            (not Gemini's: google-genai ignores them)
    429-then-200            the first attempt of each logical call fails, the
    429x2-then-200          next succeeds (x2: the first two fail)
    reset-before-headers    the request is read, then the connection is reset (RST)
    reset-mid-body          headers and about half the body are sent, then RST
                            (both also take -then-200 / xN-then-200)
    gzip                    Content-Encoding: gzip when the request accepts it;
                            streams are sync-flushed per chunk
    gzip-no-trailer         the same, minus the gzip trailer (CRC32 and length)
    deflate, br, zstd       the same with that Content-Encoding (zlib-wrapped
                            deflate; br and zstd need brotli / zstandard)
    slow, slow-<ms>         a pause before every body write (default 50 ms)
    long, long-<n>          a reply of 200 (or n) words: one stream chunk each

e.g. ``fake-429-then-200``, ``fake-gzip+slow-20``, ``fake-long-1000``,
``openai/fake-500`` (OpenRouter: the last ``/`` segment counts). An unknown
option gets a 400 in the provider's format saying so.

A *logical call* is keyed by method, target and a hash of the request body:
the SDKs resend identical bodies on retry. Attempt ``n`` of a key is the
``n``-th request with that key since the last ``clear()`` or
``reset_attempts()``; ``-then-200`` scenarios fail attempts cyclically, so
the same call made again later fails once more before succeeding. Two
identical calls in flight at once share one counter.

Content is deterministic: the reply is the first ``n`` words of a fixed cycle
(``reply_text(n)``; three words are non-ASCII), one word is one output token
and one stream chunk, and input tokens are ``len(request body) // 4`` (at
least 1). Usage is reported in each provider's own shape (and absent from
OpenAI chat streams unless ``stream_options.include_usage``).

The log (``provider.exchanges``, ``find(...)``, ``last(...)``) holds, per
request, the request as read and the response as written: ``head`` (status
line and headers), ``body`` (the entity de-chunked but still compressed, as
an HTTP client hands it up), ``chunks`` (chunk payloads as written),
``decoded_body`` / ``decoded_chunks``, ``wire`` (every byte), the scenario,
the attempt number, and what the reply says (``text``, ``usage``,
``finish_reason``, ``response_id``, ``request_id``); ``reset`` and
``complete`` tell whether it was cut short. A client can hold a response's
last byte before the server has logged it, so reading the log waits for
exchanges still in flight (``find(timeout=None)`` does not).

Run it as a process for benchmarks::

    python -m rawtap.consumer.fake_provider --port 8765
"""

from rawtap.consumer.fake_provider._content import Usage, reply_text
from rawtap.consumer.fake_provider._log import Exchange, RecordedRequest
from rawtap.consumer.fake_provider._scenario import Scenario, ScenarioError, parse_scenario
from rawtap.consumer.fake_provider._server import FakeProvider

__all__ = [
    "Exchange",
    "FakeProvider",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "Usage",
    "parse_scenario",
    "reply_text",
]
