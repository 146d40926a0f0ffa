"""A batch's per-record metric values, with their attribute sets built once per set.

The records of a batch share few attribute sets (provider, models, server,
service): each set is keyed by a tuple and its attribute dicts (with the token
type, with the error type) are built once and reused, for the SDK's
instruments and for rawtap's own aggregation (:mod:`._histograms`) alike.
"""

from collections.abc import Sequence
from typing import Any

from rawtap.consumer.derivation import Derived
from rawtap.consumer.telemetry._genai import GenAi, end_ns, error_type
from rawtap.consumer.telemetry._histograms import Measurement
from rawtap.shared import Record

TOKENS, DURATION, FIRST_CHUNK, DELAY = range(4)
"""Stream indexes: token usage, operation duration, time to first chunk, capture to persist."""

_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
)


class RecordValues:
    """Turns records into :data:`Measurement` tuples; caches the attribute dicts (bounded)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _keep(self, key: tuple[Any, ...], attributes: dict[str, Any]) -> dict[str, Any]:
        if len(self._sets) >= 4096:  # bounded: models and services are few
            self._sets.clear()
        self._sets[key] = attributes
        return attributes

    def _with(
        self, key: tuple[Any, ...], plain: dict[str, Any], name: str, value: str
    ) -> dict[str, Any]:
        hit = self._sets.get(key)
        return hit if hit is not None else self._keep(key, {**plain, name: value})

    def measurements(
        self, stored: Sequence[tuple[Record, Derived]], gen_ais: Sequence[GenAi], persisted_ns: int
    ) -> list[Measurement]:
        """Every value the records give, in the order the SDK's instruments would get them."""
        out: list[Measurement] = []
        add = out.append
        for (record, fields), gen_ai in zip(stored, gen_ais, strict=True):
            attributes = gen_ai[0]
            service = record.service or None
            base = (*[attributes.get(k) for k in _KEYS], service)
            plain = self._sets.get(base)
            if plain is None:
                plain = {k: v for k, v in attributes.items() if k in _KEYS}
                if service:
                    plain["rawtap.service"] = service
                self._keep(base, plain)
            if fields.input_tokens is not None:
                key = (*base, "input")
                attrs = self._with(key, plain, "gen_ai.token.type", "input")
                add((TOKENS, key, attrs, fields.input_tokens))
            if fields.output_tokens is not None:
                key = (*base, "output")
                attrs = self._with(key, plain, "gen_ai.token.type", "output")
                add((TOKENS, key, attrs, fields.output_tokens))
            duration = (end_ns(record) - record.started_at_ns) / 1e9
            error = error_type(record)
            if error is None:
                add((DURATION, base, plain, duration))
            else:
                key = (*base, "\x00error", error)
                add((DURATION, key, self._with(key, plain, "error.type", error), duration))
            if record.stream and fields.ttft_ns is not None:
                add((FIRST_CHUNK, base, plain, fields.ttft_ns / 1e9))
            provider = attributes.get("gen_ai.provider.name", record.provider)
            key = ("\x00delay", provider)
            attrs = self._sets.get(key) or self._keep(key, {"gen_ai.provider.name": provider})
            add((DELAY, key, attrs, max(0, persisted_ns - record.captured_at_ns) / 1e9))
        return out
