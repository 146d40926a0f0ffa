"""The derived fields: what rawtap reads out of a raw provider response.

:class:`Derived` is not part of the record a producer sends; the worker computes
it (``rawtap.consumer.derivation``) and the sink stores it in its own columns, next to
the untouched raw record, with the name and version of the parser that made it,
so ``rawtap rederive`` can recompute it after a parser changes.
"""

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, InstanceOf


class ToolCall(BaseModel):
    """One tool (function) call the model asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    """The provider's id for the call (``call_…``, ``toolu_…``); Gemini has none."""
    name: str | None = None
    """The tool's name."""
    arguments: str = ""
    """The arguments as the provider sent them: a JSON text (Anthropic and Gemini objects are
    serialized; a stream's fragments are joined)."""


class RequestParams(NamedTuple):
    """The generation parameters a request asked for, read from its JSON body (and URL).

    Read while deriving, in the same pass as :attr:`Derived.request_model`, so that
    telemetry (``gen_ai.request.*``) never parses the request body again. Each field
    is None when the request did not state it; names follow the GenAI conventions,
    whatever the provider calls them (``max_completion_tokens``, ``maxOutputTokens``,
    ``n``, ``candidateCount``, ``stop``, ``stopSequences``, …). A named tuple, not a
    model: it is built per record from values already checked, and never stored.
    """

    stream: bool = False
    """The request asked for a stream (``"stream": true``, or Gemini's
    ``:streamGenerateContent``)."""
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop_sequences: list[str] | None = None
    choice_count: int | None = None
    """Candidates asked for (``n``, ``candidateCount``)."""
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    output_type: str | None = None
    """``gen_ai.output.type``: ``json`` for a JSON response format or MIME type, ``text``,
    ``image``, ``speech`` (Gemini's response modalities)."""
    service_tier: str | None = None
    """The service tier asked for (OpenAI's ``service_tier``)."""
    encoding_formats: list[str] | None = None
    """Embeddings: the encoding asked for (``encoding_format``)."""
    dimensions: int | None = None
    """Embeddings: the dimensions asked for (``dimensions``, ``outputDimensionality``)."""


class Derived(BaseModel):
    """Normalized fields of one response, as one versioned parser read them.

    Token counts are the provider's own: OpenAI's ``input_tokens`` include cached
    tokens; Anthropic's exclude cache reads (``cached_tokens``) and cache writes
    (``cache_write_tokens``); Gemini's ``output_tokens`` exclude thoughts
    (``reasoning_tokens``). :func:`~rawtap.consumer.derivation.usage_totals` gives the
    GenAI conventions' totals.
    ``ttft_ns`` is the offset from the request start of the first chunk carrying
    output (text or a tool call) for a stream, and of the first byte otherwise.
    When the body cannot be parsed, ``parse_error`` says why and the other fields
    hold what could be read (often nothing); the raw record is never touched.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    parser: str | None = None
    """Which parser read the body (``openai.chat``, ``openai.responses``,
    ``anthropic.messages``, ``gemini.generate``), None when none applied."""
    parser_version: int | None = None
    """That parser's version; ``rawtap rederive`` recomputes older ones."""
    model: str | None = None
    """The model that answered (from the response, else from the request)."""
    response_id: str | None = None
    """The provider's id for the response (``chatcmpl-…``, ``resp_…``, ``msg_…``, Gemini's
    ``responseId``)."""
    request_id: str | None = None
    """The provider's request id (``x-request-id``, ``request-id`` headers), for support tickets."""
    input_tokens: int | None = None
    """Prompt tokens, as the provider counts them."""
    output_tokens: int | None = None
    """Generated tokens (including reasoning tokens where the provider counts them there)."""
    cached_tokens: int | None = None
    """Prompt tokens served from the provider's cache."""
    reasoning_tokens: int | None = None
    """Reasoning ("thinking") tokens, where reported."""
    cache_write_tokens: int | None = Field(default=None, exclude=True)
    """Prompt tokens written to the provider's cache (Anthropic's ``cache_creation_input_tokens``).
    Not stored and not dumped (``exclude``), as ``request_model``: the store has no column
    for it yet, and a new column is a schema migration of its own."""
    finish_reason: str | None = None
    """Why generation stopped, in the provider's words (``stop``, ``end_turn``, ``STOP``, …)."""
    text: str | None = None
    """The generated text (the first choice/candidate; thinking parts excluded)."""
    tool_calls: list[ToolCall] = []
    """Tool calls the model asked for, in order."""
    ttft_ns: int | None = None
    """Time to first token: ns from the request start (see the class docstring)."""
    provider_error: str | None = None
    """The provider's error (``type: message``) when it answered with one."""
    parse_error: str | None = None
    """Why the body could not be parsed; None when it was (or when there was nothing to parse)."""
    request_model: str | None = Field(default=None, exclude=True)
    """The model the request asked for (its JSON body's ``model``, else the URL's ``/models/…``),
    read while deriving so that telemetry (``gen_ai.request.model``) need not parse the request
    body again. Not stored and not dumped (``exclude``): a :class:`Derived` read back from a
    store has None here, so compare ``model_dump()`` (``==`` sees this field too) to ask
    whether a stored copy holds what ``derive`` made."""
    request: InstanceOf[RequestParams] | None = Field(default=None, exclude=True)
    """The request's generation parameters, read with ``request_model`` (so only when
    ``derive`` is asked for it); not stored, not dumped."""
    service_tier: str | None = Field(default=None, exclude=True)
    """The service tier that served the response (OpenAI's ``service_tier``); not stored."""
    system_fingerprint: str | None = Field(default=None, exclude=True)
    """OpenAI's ``system_fingerprint`` of the backend configuration; not stored."""

    @property
    def failed(self) -> bool:
        """True when a parser applied but could not read the body."""
        return self.parse_error is not None
