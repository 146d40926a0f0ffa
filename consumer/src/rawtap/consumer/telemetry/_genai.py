"""The GenAI semantic conventions for a recorded call: provider, system and operation names,
span and metric attributes, the error type, the call's end on the wall clock.

Names and enum values are those of the installed ``opentelemetry-semantic-conventions``.
What varies per record is little (models, usage, ids); what a URL and a provider
decide (operation, provider name, server address and port) is built once per
(provider, URL, parser) and reused. Bodies never go into attributes.

``OTEL_SEMCONV_STABILITY_OPT_IN``, read as OpenTelemetry's instrumentations read it
(a comma list, each entry stripped, compared exactly): when it holds
``gen_ai_latest_experimental`` only the latest conventions are emitted; otherwise
(unset, or other entries) the deprecated ``gen_ai.system`` is emitted too, as
rawtap always did (the conventions' transition rule: keep what was emitted by default).
"""

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes import openai_attributes as oa
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from rawtap.consumer.derivation import (
    PARSER_OPERATIONS,
    Derived,
    RequestParams,
    operation_of,
    usage_totals,
)
from rawtap.shared import PROVIDERS, EndState, Record

OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST = "gen_ai_latest_experimental"

_NAMES = ga.GenAiProviderNameValues
OPENAI = _NAMES.OPENAI.value
AZURE_OPENAI = _NAMES.AZURE_AI_OPENAI.value
VERTEX_AI = _NAMES.GCP_VERTEX_AI.value

# gen_ai.provider.name per rawtap provider name or alias, as rawtap.shared.PROVIDERS names
# them (OpenRouter has no name in the conventions: its own); any other name stands for itself.
PROVIDER_NAME = {
    name: p.gen_ai_name or p.name for p in PROVIDERS for name in (p.name, *p.aliases)
} | {
    "azure": AZURE_OPENAI,
    "azure-openai": AZURE_OPENAI,
    "vertex": VERTEX_AI,
    "vertexai": VERTEX_AI,
}
# gen_ai.system (deprecated): the older conventions' value for each provider name.
_SYSTEM_OF = {
    AZURE_OPENAI: ga.GenAiSystemValues.AZ_AI_OPENAI.value,
    VERTEX_AI: ga.GenAiSystemValues.VERTEX_AI.value,
    _NAMES.GCP_GEMINI.value: ga.GenAiSystemValues.GEMINI.value,
}
SYSTEM = {name: _SYSTEM_OF.get(value, value) for name, value in PROVIDER_NAME.items()}
OPERATION = PARSER_OPERATIONS
"""gen_ai.operation.name per derivation parser, when the URL names no endpoint."""
METRIC_ATTRIBUTES = (
    ga.GEN_AI_OPERATION_NAME,
    ga.GEN_AI_PROVIDER_NAME,
    ga.GEN_AI_REQUEST_MODEL,
    ga.GEN_AI_RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
)
"""The GenAI attributes that metrics carry (bounded cardinality: no ids), in this order."""
_API_TYPE = {
    "openai.chat": oa.OpenaiApiTypeValues.CHAT_COMPLETIONS.value,
    "openai.responses": oa.OpenaiApiTypeValues.RESPONSES.value,
}
_DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}

_FAILED_STATES = (EndState.ERROR, EndState.TRANSPORT_ERROR)

GenAi = tuple[dict[str, Any], str | None, str | None]
"""A record's GenAI attributes, its operation name (None: no GenAI operation) and request model."""


def latest_only(environ: Mapping[str, str]) -> bool:
    """True when ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest GenAI conventions only."""
    return LATEST in (entry.strip() for entry in environ.get(OPT_IN, "").split(","))


def gen_ai_attributes(record: Record, fields: Derived, *, system: bool = True) -> GenAi:
    """The GenAI attributes of a record, its operation name and request model.

    The operation is the one the URL's endpoint names, else the parser's; a record
    of an endpoint that is no GenAI operation (``/v1/models``, files) gets no
    ``gen_ai.*`` attribute at all, only ``server.*``. ``system`` adds the deprecated
    ``gen_ai.system``. The request model is the one ``derive`` read
    (``fields.request_model``: the worker asks for it when telemetry is on); a
    :class:`Derived` read back from a store has none.
    """
    static, operation = _static(record.provider, record.url, fields.parser, system)
    attributes = dict(static)
    if operation is None:
        return attributes, None, None
    request_model = fields.request_model
    if request_model:
        attributes[ga.GEN_AI_REQUEST_MODEL] = request_model
    if fields.model:
        attributes[ga.GEN_AI_RESPONSE_MODEL] = fields.model
    return attributes, operation, request_model


_STATIC: dict[tuple[str, str | None, str | None, bool], tuple[dict[str, Any], str | None]] = {}


def _static(
    provider: str, url: str | None, parser: str | None, system: bool
) -> tuple[dict[str, Any], str | None]:
    """What the provider, URL and parser decide (cached: a service calls few URLs)."""
    key = (provider, url, parser, system)
    hit = _STATIC.get(key)
    if hit is not None:
        return hit
    host, port, query = _server(url) if url else (None, None, "")
    operation = operation_of(url, parser)
    attributes: dict[str, Any] = {}
    if operation is not None:
        name = provider_name(provider, host, query)
        attributes[ga.GEN_AI_OPERATION_NAME] = operation
        attributes[ga.GEN_AI_PROVIDER_NAME] = name
        if system:
            attributes[ga.GEN_AI_SYSTEM] = _SYSTEM_OF.get(name, name)
        if name == OPENAI and parser in _API_TYPE:
            attributes[oa.OPENAI_API_TYPE] = _API_TYPE[parser]
    if host:
        attributes[SERVER_ADDRESS] = host
        if port is not None:
            attributes[SERVER_PORT] = port
    if len(_STATIC) >= 4096:  # bounded: query strings may vary
        _STATIC.clear()
    out = _STATIC[key] = (attributes, operation)
    return out


def provider_name(provider: str, host: str | None, query: str = "") -> str:
    """``gen_ai.provider.name``: by the host where it tells (Azure OpenAI, Vertex AI), else by
    rawtap's provider name (an Azure deployment is also known by its ``api-version`` query)."""
    name = PROVIDER_NAME.get(provider.lower(), provider)
    if host:
        if host.endswith("aiplatform.googleapis.com"):
            return VERTEX_AI
        if host.endswith(".openai.azure.com"):
            return AZURE_OPENAI
    if name == OPENAI and "api-version=" in query:
        return AZURE_OPENAI
    return name


def _server(url: str) -> tuple[str | None, int | None, str]:
    """``server.address``, ``server.port`` (the scheme's default when the URL has none), query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unparsable URL or port
        return None, None, ""
    host = parts.hostname
    if port is None and host:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
    return host, port, parts.query


def record_attributes(
    record: Record, fields: Derived, gen_ai: GenAi | None = None, *, system: bool = True
) -> dict[str, Any]:
    """What the span carries besides the metric attributes: usage, request, outcome, ids.

    ``gen_ai`` is the record's :func:`gen_ai_attributes` (made when not given). Usage is
    the conventions' totals (:func:`~rawtap.consumer.derivation.usage_totals`: cache
    reads and writes in the input, reasoning in the output); the provider's own split
    stays in the store. ``gen_ai.request.stream`` is set, true, when the request asked
    for a stream; ``rawtap.response.stream`` says whether the response was one.
    """
    if gen_ai is None:
        gen_ai = gen_ai_attributes(record, fields, system=system)
    attributes, operation, _ = gen_ai
    out: dict[str, Any] = {
        "rawtap.record_id": record.record_id,
        "rawtap.producer_id": record.producer_id,
        "rawtap.end_state": record.end_state.value,
        "rawtap.response.stream": record.stream,
    }
    if operation is not None:
        _generation(record, fields, attributes.get(ga.GEN_AI_PROVIDER_NAME) == OPENAI, out)
    if record.method is not None:
        out[HTTP_REQUEST_METHOD] = record.method
    if record.status is not None:
        out[HTTP_RESPONSE_STATUS_CODE] = record.status
    error = error_type(record)
    if error is not None:
        out[ERROR_TYPE] = error
    if record.session_id is not None:
        out[SESSION_ID] = record.session_id
        if operation is not None:
            out[ga.GEN_AI_CONVERSATION_ID] = record.session_id
    if fields.request_id is not None:
        out["rawtap.provider.request_id"] = fields.request_id
    if record.call_id is not None:
        out["rawtap.call_id"] = record.call_id
    if record.attempt is not None:
        out["rawtap.attempt"] = record.attempt
    if record.truncated:
        out["rawtap.truncated"] = True
    if fields.parse_error is not None:
        out["rawtap.parse_error"] = fields.parse_error
    return out


def _generation(record: Record, fields: Derived, openai: bool, out: dict[str, Any]) -> None:
    """The attributes of a GenAI operation: request, usage, response."""
    request = fields.request
    if request.stream if request is not None else record.stream:
        out[ga.GEN_AI_REQUEST_STREAM] = True
    if request is not None:
        _request(request, openai, out)
    input_tokens, output_tokens = usage_totals(fields)
    if input_tokens is not None:
        out[ga.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        out[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if fields.cached_tokens is not None:
        out[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = fields.cached_tokens
    if fields.cache_write_tokens is not None:
        out[ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = fields.cache_write_tokens
    if fields.reasoning_tokens is not None:
        out[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = fields.reasoning_tokens
    if fields.finish_reason is not None:
        out[ga.GEN_AI_RESPONSE_FINISH_REASONS] = [fields.finish_reason]
    elif record.end_state is not EndState.COMPLETE:
        out[ga.GEN_AI_RESPONSE_FINISH_REASONS] = ["error"]  # cut before the model finished
    if fields.response_id is not None:
        out[ga.GEN_AI_RESPONSE_ID] = fields.response_id
    if record.stream and fields.ttft_ns is not None:
        out[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = fields.ttft_ns / 1e9
    if openai:
        if fields.service_tier is not None:
            out[oa.OPENAI_RESPONSE_SERVICE_TIER] = fields.service_tier
        if fields.system_fingerprint is not None:
            out[oa.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fields.system_fingerprint


def _request(request: RequestParams, openai: bool, out: dict[str, Any]) -> None:
    if request.temperature is not None:
        out[ga.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
    if request.top_p is not None:
        out[ga.GEN_AI_REQUEST_TOP_P] = request.top_p
    if request.top_k is not None:
        out[ga.GEN_AI_REQUEST_TOP_K] = request.top_k
    if request.max_tokens is not None:
        out[ga.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.seed is not None:
        out[ga.GEN_AI_REQUEST_SEED] = request.seed
    if request.stop_sequences is not None:
        out[ga.GEN_AI_REQUEST_STOP_SEQUENCES] = request.stop_sequences
    if request.choice_count is not None and request.choice_count != 1:
        out[ga.GEN_AI_REQUEST_CHOICE_COUNT] = request.choice_count
    if request.frequency_penalty is not None:
        out[ga.GEN_AI_REQUEST_FREQUENCY_PENALTY] = request.frequency_penalty
    if request.presence_penalty is not None:
        out[ga.GEN_AI_REQUEST_PRESENCE_PENALTY] = request.presence_penalty
    if request.output_type is not None:
        out[ga.GEN_AI_OUTPUT_TYPE] = request.output_type
    if request.encoding_formats is not None:
        out[ga.GEN_AI_REQUEST_ENCODING_FORMATS] = request.encoding_formats
    if request.dimensions is not None:
        out[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = request.dimensions
    if openai and request.service_tier is not None and request.service_tier != "auto":
        out[oa.OPENAI_REQUEST_SERVICE_TIER] = request.service_tier


def error_type(record: Record) -> str | None:
    """``error.type``: the HTTP status from 400 up, else a failed end state, else None."""
    if record.status is not None and record.status >= 400:
        return str(record.status)
    if record.end_state in _FAILED_STATES:
        return record.end_state.value
    return None


def end_ns(record: Record) -> int:
    """The call's end on the wall clock: start plus the recorded (monotonic) end offset.

    A record without ``ended_ns`` (given to ``record()`` by hand) ends at its last
    chunk or first byte, else when it was captured.
    """
    start = record.started_at_ns
    if record.ended_ns is not None:
        return start + record.ended_ns
    last = max([c.offset_ns for c in record.chunks] + [record.first_byte_ns or 0])
    if last:
        return start + last
    return max(start, record.captured_at_ns)
