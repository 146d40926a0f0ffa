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
    openai.completions  OpenAI legacy completions (``/v1/completions``)
    openai.embeddings   OpenAI embeddings: model and usage only
    anthropic.messages  Anthropic messages
    gemini.generate     Gemini generateContent / streamGenerateContent (SSE or JSON array)

A URL naming an endpoint that no parser reads (``/v1/models``, files, batches,
Gemini's ``:embedContent``) is not parsed at all: picking a parser by content
or provider would misread it. ``operation_of`` gives a call's GenAI operation
(by its URL's endpoint, else by its parser); ``usage_totals`` the conventions'
token totals from the provider's own split.

The modules::

    _derive.py      derive, derive_all, is_stale, iter_parsers, request_model
    _request.py     the request body, parsed once: the model and the generation parameters
    _parser.py      the parser table; picking by URL or by content; operation_of
    _endpoints.py   which GenAI operation (or none) a URL path names
    _usage.py       usage_totals: the GenAI conventions' token totals
    _providers/     one module per wire format, each exporting a Parser (URL match,
                    markers, GenAI operation; provider names from rawtap.shared.PROVIDERS)
    _body.py        the decoded body, its arrival times, sniffing
    _sse.py         server-sent events
    _fields.py      what a parser fills in; small JSON coercion helpers
    _derived.py     the Derived, RequestParams and ToolCall models
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
from rawtap.consumer.derivation._derived import Derived, RequestParams, ToolCall
from rawtap.consumer.derivation._parser import PARSER_OPERATIONS, PARSER_VERSIONS, operation_of
from rawtap.consumer.derivation._sse import SseEvent, sse_events
from rawtap.consumer.derivation._unmasked import REDACTED, DigestMatcher, mask_derived
from rawtap.consumer.derivation._usage import usage_totals

__all__ = [
    "PARSER_OPERATIONS",
    "PARSER_VERSIONS",
    "REDACTED",
    "Derived",
    "DigestMatcher",
    "RequestParams",
    "SseEvent",
    "ToolCall",
    "derive",
    "derive_all",
    "is_stale",
    "iter_parsers",
    "mask_derived",
    "operation_of",
    "request_model",
    "sse_events",
    "usage_totals",
]
