"""The parser table, and picking a parser by the request URL or by the body's content.

Adding a provider wire format: write a module under ``_providers/`` that exports a
``PARSER`` (its URL match, body markers and GenAI operation; the provider names
it reads come from :data:`rawtap.shared.PROVIDERS` entries whose ``wire_format``
is its name), and list it in ``PARSERS`` and ``_SNIFF_ORDER`` (the most specific
markers first). The GenAI operation of a URL is :mod:`._endpoints`'s.
"""

import functools
from typing import NamedTuple
from urllib.parse import urlsplit

from rawtap.consumer.derivation._endpoints import UNKNOWN, Endpoint, endpoint
from rawtap.consumer.derivation._fields import Parser
from rawtap.consumer.derivation._providers import (
    _anthropic,
    _gemini,
    _openai_chat,
    _openai_completions,
    _openai_embeddings,
    _openai_responses,
)

PARSERS: dict[str, Parser] = {
    p.name: p
    for p in (
        _openai_chat.PARSER,
        _openai_responses.PARSER,
        _openai_completions.PARSER,
        _openai_embeddings.PARSER,
        _anthropic.PARSER,
        _gemini.PARSER,
    )
}
"""Every parser, by name, in the order the request URL is matched."""

PARSER_VERSIONS: dict[str, int] = {name: p.version for name, p in PARSERS.items()}
"""Every parser's current version, by name."""

PARSER_OPERATIONS: dict[str, str] = {name: p.operation for name, p in PARSERS.items()}
"""Every parser's GenAI operation (``gen_ai.operation.name``), by name."""

_SNIFF_ORDER = (
    _gemini.PARSER,
    _anthropic.PARSER,
    _openai_responses.PARSER,
    _openai_completions.PARSER,
    _openai_chat.PARSER,
)
"""The order markers are looked for in a body's head (the most specific markers first)."""

_URL_ORDER = tuple(PARSERS.values())


class Route(NamedTuple):
    """What a request URL says: the parser of its format, and its endpoint."""

    parser: Parser | None
    endpoint: Endpoint


_NOWHERE = Route(None, UNKNOWN)


def route(url: str | None) -> Route:
    """The parser a request URL's path is answered in (if one is) and what endpoint it names."""
    if not url:
        return _NOWHERE
    return _by_url(url)


def pick_by_url(url: str | None) -> Parser | None:
    """The parser of the format a request URL's path answers, if one does."""
    return route(url).parser


@functools.lru_cache(maxsize=4096)
def _by_url(url: str) -> Route:
    # A service calls a handful of URLs again and again: split each once, not per record.
    path = urlsplit(url).path
    for parser in _URL_ORDER:
        if parser.matches_path(path):
            return Route(parser, endpoint(path))
    return Route(None, endpoint(path))


def operation_of(url: str | None, parser: str | None) -> str | None:
    """``gen_ai.operation.name`` of a call: its URL's endpoint's, else that of the parser that
    read its body; None for an endpoint that is no GenAI operation (or none known at all)."""
    try:
        known = route(url).endpoint
    except ValueError:  # an unparsable URL names no endpoint
        known = UNKNOWN
    if known.known:
        return known.operation
    return PARSER_OPERATIONS.get(parser) if parser else None


def pick_by_content(provider: str, head: bytes) -> Parser | None:
    for parser in _SNIFF_ORDER:
        for marker in parser.markers:
            if marker in head:
                return parser
    name = provider.lower()
    for parser in _URL_ORDER:
        if name in parser.providers:
            return parser
    return None
