"""Derivation: versioned per-provider parsers that read raw bodies into :class:`Derived`.

``derive(record)`` picks a parser from the request URL (``/chat/completions``,
``/responses``, ``/messages``, ``:generateContent``), else from the provider
name and the body itself; undoes the ``Content-Encoding``; reads a JSON body or
the server-sent events of a stream chunk by chunk (so the time to first token is
the arrival time of the chunk that carried it); and never raises: a body it
cannot read yields a :class:`Derived` whose ``parse_error`` says why.

Parsers and their versions (bump a version whenever a parser's output changes,
then ``rawtap rederive`` brings stored records up to date)::

    openai.chat         OpenAI chat completions (also OpenRouter, Azure, compatible servers)
    openai.responses    OpenAI Responses API
    anthropic.messages  Anthropic messages
    gemini.generate     Gemini generateContent / streamGenerateContent (SSE or JSON array)

The modules::

    _derive.py      derive, derive_all, is_stale, iter_parsers, request_model
    _parser.py      the parser table; picking by URL or by content
    _providers/     one module per wire format, each exporting a Parser (URL match,
                    markers, GenAI operation; provider names from rawtap.shared.PROVIDERS)
    _body.py        the decoded body, its arrival times, sniffing
    _sse.py         server-sent events
    _fields.py      what a parser fills in; small JSON coercion helpers
    _derived.py     the Derived and ToolCall models
    _unmasked.py    masking secrets that only the joined text reveals

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
from rawtap.consumer.derivation._parser import PARSER_OPERATIONS, PARSER_VERSIONS
from rawtap.consumer.derivation._sse import SseEvent, sse_events
from rawtap.consumer.derivation._unmasked import REDACTED, DigestMatcher, mask_derived

__all__ = [
    "PARSER_OPERATIONS",
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
