"""Derivation: what a record's raw bytes say — model, tokens, finish reason, tool calls, timing.

``derive(record)`` picks a versioned parser for the record's wire format
(``_parser``: by URL, else by provider and content), undoes the
``Content-Encoding``, reads the JSON body or the server-sent events (``_sse``)
chunk by chunk, and never raises. Each wire format is one module under
``_providers/`` (OpenAI chat, OpenAI Responses, Anthropic, Gemini): adding a
provider means one module there, its entry in ``_parser``, and its tests.

The folder is ``derivation`` rather than ``derive`` so that ``rawtap.consumer.derive``
stays the function every caller imports, never shadowed by a package of that name.
"""

from rawtap.consumer.derivation._derive import (
    derive,
    derive_all,
    is_stale,
    iter_parsers,
    request_model,
)
from rawtap.consumer.derivation._derived import Derived, ToolCall
from rawtap.consumer.derivation._parser import PARSER_VERSIONS
from rawtap.consumer.derivation._sse import SseEvent, sse_events
from rawtap.consumer.derivation._unmasked import REDACTED, DigestMatcher, mask_derived

__all__ = [
    "PARSER_VERSIONS",
    "REDACTED",
    "Derived",
    "DigestMatcher",
    "SseEvent",
    "ToolCall",
    "derive",
    "derive_all",
    "is_stale",
    "iter_parsers",
    "mask_derived",
    "request_model",
    "sse_events",
]
