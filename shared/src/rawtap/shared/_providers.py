"""What rawtap knows of each provider, in one table both packages read: :data:`PROVIDERS`.

The producer's tap reads the hosts (which provider a request goes to), the
terminal markers (did a stream reach its end before the SDK closed it) and
the SDK (which clients ``instrument()`` knows how to reach into). The
consumer reads the wire format (the derivation parser for a provider named in
a record whose URL does not say), the aliases, and the names the OpenTelemetry
GenAI conventions give the provider.

Adding a provider: one :class:`Provider` entry here; if its responses are in a
wire format rawtap cannot read yet, a parser module under
``rawtap/consumer/derivation/_providers/`` (see that package's docstring) whose
name the entry gives as ``wire_format``; and, if its SDK is of a layout the tap
does not know, an installer in ``rawtap/producer/_tap/_instrument.py``.
"""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Sdk:
    """A provider's own SDK, as ``Recorder.instrument`` reaches into its clients."""

    module: str
    """The root of its modules (``openai``, ``google.genai``): a client whose class (or a base)
    was defined under it is one of this SDK's."""
    layout: Literal["stainless", "genai"]
    """Where its httpx client lives: ``stainless`` (openai, anthropic: ``client._client``, a
    ``request`` method, ``copy``/``with_options``) or ``genai`` (google-genai's ``_api_client``)."""
    name_by_host: bool = False
    """The client's ``base_url`` host names the provider (the OpenAI SDK talks to OpenRouter,
    Azure, Gemini's OpenAI-compatible endpoint); else the entry's own name."""

    @property
    def kind(self) -> str:
        """A short name for messages: the module's last part (``openai``, ``genai``)."""
        return self.module.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider: the facts producer and consumer share about it."""

    name: str
    """rawtap's name for it: ``Record.provider`` and the ``RAWTAP_PROVIDERS`` filter."""
    hosts: tuple[str, ...] = ()
    """API hosts: a request to one of these (or a subdomain) goes to this provider."""
    terminal_markers: tuple[bytes, ...] = ()
    """Bytes only the last event of a complete stream carries (``data: [DONE]``)."""
    sdk: Sdk | None = None
    """Its own SDK, when ``instrument()`` knows it."""
    wire_format: str | None = None
    """The derivation parser that reads its responses when the URL does not say which."""
    aliases: tuple[str, ...] = ()
    """Other names a caller may give it in ``record(provider=…)`` that mean the same format."""
    gen_ai_name: str | None = None
    """``gen_ai.provider.name`` (GenAI conventions); None means ``name``."""
    gen_ai_system: str | None = None
    """``gen_ai.system`` (the conventions' older attribute); None means ``name``."""


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        name="openai",
        hosts=("openai.azure.com", "openai.com"),
        terminal_markers=(
            b"data: [DONE]",  # chat completions
            b"event: response.completed",  # Responses
            b"event: response.failed",
            b"event: response.incomplete",
        ),
        sdk=Sdk("openai", "stainless", name_by_host=True),
        wire_format="openai.chat",
        aliases=("azure", "azure-openai"),
    ),
    Provider(
        name="openrouter",
        hosts=("openrouter.ai",),
        terminal_markers=(b"data: [DONE]",),
        wire_format="openai.chat",
    ),
    Provider(
        name="anthropic",
        hosts=("anthropic.com",),
        terminal_markers=(b"event: message_stop", b'"type":"message_stop"'),
        sdk=Sdk("anthropic", "stainless"),
        wire_format="anthropic.messages",
        aliases=("claude",),
    ),
    Provider(
        name="gemini",
        hosts=("googleapis.com",),
        terminal_markers=(b'"finishReason"',),
        sdk=Sdk("google.genai", "genai"),
        wire_format="gemini.generate",
        aliases=("google", "google-genai", "vertex", "vertexai"),
        gen_ai_name="gcp.gemini",
    ),
)
"""Every provider rawtap knows by name."""


def provider_from_host(host: str) -> str | None:
    """The provider a request to ``host`` goes to, when it is one of the known APIs."""
    host = host.lower()
    for provider in PROVIDERS:
        for suffix in provider.hosts:
            if host == suffix or host.endswith("." + suffix):
                return provider.name
    return None


def terminal_markers() -> tuple[bytes, ...]:
    """Every provider's terminal markers, each once, in table order."""
    return tuple(dict.fromkeys(m for p in PROVIDERS for m in p.terminal_markers))


def names_read_as(wire_format: str) -> frozenset[str]:
    """The provider names (and aliases) whose responses are in ``wire_format``."""
    return frozenset(
        name for p in PROVIDERS if p.wire_format == wire_format for name in (p.name, *p.aliases)
    )
