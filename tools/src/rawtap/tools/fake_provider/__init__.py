"""rawtap.tools.fake_provider: a local server that answers like the LLM providers, byte for byte.

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
start with ``fake-`` is the normal scenario; otherwise the rest is one or more
``+``-joined options, e.g. ``fake-429-then-200``, ``fake-gzip+slow-20``,
``fake-long-1000``, ``openai/fake-500`` (OpenRouter: the last ``/`` segment
counts). ``rawtap.tools.fake_provider._scenario.OPTIONS`` lists every option;
``python -m rawtap.tools.fake_provider --help`` prints them and
docs/testing.md has the table. An unknown option gets a 400 in the provider's
format saying so.

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

    python -m rawtap.tools.fake_provider --port 8765
"""

from rawtap.tools.fake_provider._content import Usage, reply_text
from rawtap.tools.fake_provider._log import Exchange, RecordedRequest
from rawtap.tools.fake_provider._scenario import Scenario, ScenarioError, parse_scenario
from rawtap.tools.fake_provider._server import FakeProvider

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
