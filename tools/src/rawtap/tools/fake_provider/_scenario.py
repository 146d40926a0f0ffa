"""Scenarios: what the fake provider does with one request, read from the model name.

The model name is the one knob every SDK passes through unchanged (in the JSON
body for OpenAI, OpenRouter and Anthropic, in the URL path for Gemini), so it
selects the scenario: ``fake-`` followed by ``+``-joined options, e.g.
``fake-429-then-200`` or ``fake-gzip+slow-20+long-50``. Any other model name
is the normal scenario. ``OPTIONS`` is the documentation of every option: the
process's ``--help`` prints it and docs/testing.md lists it (a test keeps them
equal, and checks that each option parses and that every field of ``Scenario``
is set by one of them).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace

PREFIX = "fake"

# Statuses a scenario can fail with; each provider module knows its body for them.
ERROR_STATUSES = (400, 401, 429, 500, 503, 529)

RESET_BEFORE_HEADERS = "before-headers"
RESET_MID_BODY = "mid-body"

DEFAULT_WORDS = 12
DEFAULT_LONG_WORDS = 200
DEFAULT_SLOW_MS = 50

_FAULT = re.compile(
    r"^(?P<fault>\d{3}|reset-before-headers|reset-mid-body)"
    r"(?:x(?P<times>[1-9]\d{0,2}))?"
    r"(?P<then>-then-200)?$"
)
_SLOW = re.compile(r"^slow(?:-(?P<ms>\d{1,5}))?$")
_LONG = re.compile(r"^long(?:-(?P<n>[1-9]\d{0,5}))?$")


@dataclass(frozen=True, slots=True)
class ScenarioOption:
    """One option of a ``fake-…`` model name: its syntax, an example, what it does."""

    syntax: str
    example: str
    meaning: str


OPTIONS: tuple[ScenarioOption, ...] = (
    ScenarioOption(
        "normal", "fake-normal", "a normal reply (same as any model name not starting fake-)"
    ),
    ScenarioOption(
        "<status>",
        "fake-429",
        "every attempt fails with that status (400 401 429 500 503 529) and the "
        "provider's own error body; retryable ones carry retry-after-ms: 10 and "
        "retry-after: 0 (not Gemini's: google-genai ignores them)",
    ),
    ScenarioOption(
        "<fault>-then-200, <fault>x<n>-then-200",
        "fake-500x2-then-200",
        "the first (n) attempts of each logical call get the fault, the next succeeds",
    ),
    ScenarioOption(
        "reset-before-headers",
        "fake-reset-before-headers",
        "the request is read, then the connection is reset (RST); also -then-200",
    ),
    ScenarioOption(
        "reset-mid-body",
        "fake-reset-mid-body-then-200",
        "headers and about half the body are sent, then RST; also -then-200",
    ),
    ScenarioOption(
        "gzip",
        "fake-gzip",
        "Content-Encoding: gzip when the request accepts it; streams sync-flushed per chunk",
    ),
    ScenarioOption(
        "gzip-no-trailer",
        "fake-gzip-no-trailer",
        "the same, minus the gzip trailer (CRC32, length)",
    ),
    ScenarioOption(
        "deflate, br, zstd",
        "fake-br",
        "the same with that Content-Encoding (zlib-wrapped deflate; br and zstd need "
        "brotli / zstandard)",
    ),
    ScenarioOption(
        "slow, slow-<ms>",
        "fake-slow-20",
        f"a pause before every body write (default {DEFAULT_SLOW_MS} ms, or --slow-ms)",
    ),
    ScenarioOption(
        "long, long-<n>",
        "fake-long-1000",
        f"a reply of {DEFAULT_LONG_WORDS} (or n) words, one stream chunk each",
    ),
)


def options_help() -> str:
    """``OPTIONS`` as plain text, one option a paragraph (the process's ``--help``)."""
    lines = textwrap.wrap(
        "scenarios: a model name fake-<option>[+<option>…] picks one (any other model name "
        "is the normal reply); OpenRouter's openai/fake-… counts its last / segment:",
        88,
    )
    for option in OPTIONS:
        lines.append(f"  {option.syntax:<40} e.g. {option.example}")
        lines.extend(
            textwrap.wrap(option.meaning, 88, initial_indent=" " * 6, subsequent_indent=" " * 6)
        )
    return "\n".join(lines)


class ScenarioError(ValueError):
    """A ``fake-…`` model name the fake provider does not understand (answered with 400)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the fake provider does for one request.

    ``fault`` is an HTTP status (``"429"``), ``"reset-before-headers"``,
    ``"reset-mid-body"`` or ``None``. With ``then_ok`` the fault hits only the
    first ``fail_times`` attempts of a logical call and later attempts succeed;
    without it every attempt fails.
    """

    name: str = "normal"
    status: int | None = None
    reset: str | None = None
    fail_times: int = 1
    then_ok: bool = False
    gzip: bool = False
    """The entity is compressed (with ``coding``) when the request accepts it."""
    gzip_trailer: bool = True
    coding: str = "gzip"
    """``gzip``, ``deflate``, ``br`` or ``zstd``."""
    chunk_delay: float = 0.0
    words: int = DEFAULT_WORDS

    @property
    def has_fault(self) -> bool:
        """True when some attempts fail (an error status or a connection reset)."""
        return self.status is not None or self.reset is not None

    def fails(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based) of a logical call gets the fault."""
        if not self.has_fault:
            return False
        if not self.then_ok:
            return True
        # Cyclic, so the same request made again later is again a fresh logical call.
        return (attempt - 1) % (self.fail_times + 1) < self.fail_times


def parse_scenario(model: str, slow_ms: int = DEFAULT_SLOW_MS) -> Scenario:
    """The scenario a model name selects; ``ScenarioError`` for a bad ``fake-…`` name.

    A name with a provider prefix (``openai/fake-429``, ``models/fake-429``)
    is judged by its last ``/`` segment.
    """
    base = model.rsplit("/", 1)[-1]
    if not base.startswith(PREFIX + "-"):
        return Scenario()
    spec = base[len(PREFIX) + 1 :]
    scenario = Scenario(name=spec)
    for option in spec.split("+"):
        scenario = _apply(option, scenario, slow_ms)
    return scenario


def _apply(option: str, scenario: Scenario, slow_ms: int) -> Scenario:
    if option == "normal":
        return scenario
    if option == "gzip":
        return replace(scenario, gzip=True)
    if option in ("deflate", "br", "zstd"):
        return replace(scenario, gzip=True, coding=option)
    if option == "gzip-no-trailer":
        return replace(scenario, gzip=True, gzip_trailer=False)
    if match := _SLOW.match(option):
        return replace(scenario, chunk_delay=int(match["ms"] or slow_ms) / 1000)
    if match := _LONG.match(option):
        return replace(scenario, words=int(match["n"] or DEFAULT_LONG_WORDS))
    if match := _FAULT.match(option):
        if scenario.has_fault:
            raise ScenarioError(f"fake model names take one fault, got a second: {option!r}")
        if match["times"] and not match["then"]:
            raise ScenarioError(f"{option!r}: xN only makes sense with -then-200")
        times, then_ok = int(match["times"] or 1), bool(match["then"])
        fault = match["fault"]
        if not fault.isdigit():
            reset = fault.removeprefix("reset-")
            return replace(scenario, reset=reset, fail_times=times, then_ok=then_ok)
        status = int(fault)
        if status not in ERROR_STATUSES:
            allowed = ", ".join(map(str, ERROR_STATUSES))
            raise ScenarioError(f"fake error status {status} is not one of {allowed}")
        return replace(scenario, status=status, fail_times=times, then_ok=then_ok)
    raise ScenarioError(
        f"unknown fake scenario option {option!r}; "
        "`python -m rawtap.tools.fake_provider --help` lists them"
    )
