"""ReplayServer: serves stored records back over HTTP, byte for byte, in each provider's format.

Point a real SDK at it (``OpenAI(base_url=server.url + "/v1")``,
``Anthropic(base_url=server.url)``, ``genai.Client(http_options={"base_url": server.url})``)
and it gets the status, headers and body bytes the provider sent when the record
was made — including ``Content-Encoding`` and, for streams, the same chunks,
optionally at the recorded pace. Record in production, replay in CI.

How a request finds its record (``match``):

- ``request`` (default): same method, URL path and request body (JSON compared
  with sorted keys, so key order does not matter);
- ``path``: same method and URL path, in recorded order;
- ``sequence``: the next record, whatever was asked.

Records that match the same request are served in capture order (an SDK's retry
gets the next attempt); the last one is repeated. A request that matches nothing
gets a 404 whose JSON body says so, and is counted in :attr:`ReplayServer.miss_count`;
the last ``max_misses`` of them are listed in :attr:`ReplayServer.misses`.
A record that ended before its headers (``transport_error``) closes the connection
without a response; a stream that did not complete is cut off without its end.

What a client can make it hold is bounded: at most ``max_connections`` connections
are served at once (each on its own thread; one more is answered 503 and closed),
a connection idle for ``idle_timeout_s`` is closed, a request body above
``max_request_bytes`` gets a 413, and a miss is kept with its path cut to
``MISS_PATH_CHARS``. A stored header that cannot be sent as one header line (CR,
LF or NUL in its value, a name that is not an HTTP token) is left out of the
replayed response, logged and counted in :attr:`ReplayServer.unsafe_headers`:
it is never sent raw, so a record cannot split the response.

:meth:`ReplayServer.close` stops :meth:`~ReplayServer.serve_forever` at once,
whichever thread runs it (also from a signal handler in that thread), and
closes the connections still open.

The package's modules: ``_match`` (which record answers a request; no IO),
``_http`` (the response, header by header and chunk by chunk), ``_server``
(the bounded threaded server and its stoppable loop).
"""

from rawtap.tools.replay._match import MISS_PATH_CHARS, Matcher, MatchMode, canonical_body
from rawtap.tools.replay._server import ReplayServer

__all__ = ["MISS_PATH_CHARS", "MatchMode", "Matcher", "ReplayServer", "canonical_body"]
