"""Which GenAI operation a request URL's path names, if any (``gen_ai.operation.name``).

The endpoints the provider SDKs call, by the end of the path::

    …/chat/completions                    chat             (OpenAI, Azure, OpenRouter, compatible)
    …/responses                           chat             (OpenAI Responses: the conventions
                                                            name it chat, openai.api.type tells)
    …/completions                         text_completion  (OpenAI legacy completions)
    …/embeddings                          embeddings
    …/messages                            chat             (Anthropic)
    …/v1/complete                         text_completion  (Anthropic legacy text completions)
    …:generateContent, :streamGenerateContent            generate_content (Gemini, Vertex AI)
    …:embedContent, :batchEmbedContents, :asyncBatchEmbedContent   embeddings

and none for the API's other resources: model listings (``/v1/models``,
Gemini's ``/v1beta/models/x`` without a method), files, batches, uploads,
fine-tuning, vector stores, assistants and threads, moderations, images,
audio, cached contents, token counting (``/messages/count_tokens``,
``:countTokens``), stored responses (``/responses/{id}``) and the like: a
record of those is no GenAI operation. Any other path is *unknown*: the parser
that read the body decides (a Vertex AI ``:rawPredict`` carrying an Anthropic
message is a chat).
"""

import re
from typing import NamedTuple

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
)

CHAT = GenAiOperationNameValues.CHAT.value
TEXT_COMPLETION = GenAiOperationNameValues.TEXT_COMPLETION.value
EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value
GENERATE_CONTENT = GenAiOperationNameValues.GENERATE_CONTENT.value


class Endpoint(NamedTuple):
    """What a URL path names: whether rawtap knows the endpoint, and its GenAI operation."""

    known: bool
    """The path is an endpoint rawtap knows (with an operation or none)."""
    operation: str | None
    """Its ``gen_ai.operation.name``; None for a known endpoint that is no GenAI operation."""


UNKNOWN = Endpoint(known=False, operation=None)
NOT_GENAI = Endpoint(known=True, operation=None)

_SUFFIXES = (
    ("/chat/completions", CHAT),
    ("/completions", TEXT_COMPLETION),
    ("/embeddings", EMBEDDINGS),
    ("/responses", CHAT),
    ("/messages", CHAT),
    ("/v1/complete", TEXT_COMPLETION),  # not any …/complete (OpenAI's /uploads/{id}/complete)
)
_METHODS = {
    "generateContent": GENERATE_CONTENT,
    "streamGenerateContent": GENERATE_CONTENT,
    "embedContent": EMBEDDINGS,
    "batchEmbedContents": EMBEDDINGS,
    "asyncBatchEmbedContent": EMBEDDINGS,
    "countTokens": None,
    "computeTokens": None,
    "batchGenerateContent": None,
}
"""Gemini / Vertex AI methods (``…/models/m:method``); others (``:rawPredict``) are unknown."""
_ELSEWHERE = frozenset(
    {
        "models", "files", "batches", "uploads", "fine_tuning", "fine-tunes", "vector_stores",
        "assistants", "threads", "moderations", "images", "audio", "realtime", "containers",
        "conversations", "evals", "organization", "cachedContents", "tunedModels",
        "operations", "corpora", "skills", "deployments", "generation", "credits", "keys",
        "key", "providers", "activity",
    }
)  # fmt: skip
"""API resources (the segment after the version) that are no GenAI operation."""
_OPERATIONS = frozenset({"chat", "completions", "embeddings", "responses", "messages", "complete"})
"""Resources whose sub-paths (a stored response, ``count_tokens``, message batches) are none."""
_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?|openai")


def endpoint(path: str) -> Endpoint:
    """What the request URL path ``path`` names (see the module docstring)."""
    path = path.rstrip("/")
    last = path.rpartition("/")[2]
    if ":" in last:
        method = last.rpartition(":")[2]
        if method in _METHODS:
            return Endpoint(True, _METHODS[method])
        return UNKNOWN
    for suffix, operation in _SUFFIXES:
        if path.endswith(suffix):
            if "/threads/" in path:  # the Assistants API's thread messages
                return NOT_GENAI
            return Endpoint(True, operation)
    segments = path.split("/")
    for i, segment in enumerate(segments[:-1]):
        if _VERSION.fullmatch(segment):
            resource = segments[i + 1]
            if resource in _ELSEWHERE or resource in _OPERATIONS:
                # Azure's /openai/deployments/{name}/… ends in an operation, matched above.
                return NOT_GENAI
    return UNKNOWN
