"""A batch's per-record metric values, with their attribute sets built once per set.

The records of a batch share few attribute sets (provider, models, server,
service): each set is keyed by a tuple and its attribute dicts (with the token
type, with the error type) are built once and reused, for the SDK's
instruments and for rawtap's own aggregation (:mod:`._histograms`) alike.
"""

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from rawtap.consumer.derivation import Derived, usage_totals
from rawtap.consumer.telemetry._genai import METRIC_ATTRIBUTES, GenAi, end_ns, error_type
from rawtap.consumer.telemetry._histograms import Measurement
from rawtap.shared import Chunk, Record

TOKENS, DURATION, FIRST_CHUNK, DELAY, PER_CHUNK = range(5)
"""Stream indexes: token usage, operation duration, time to first chunk, capture to persist,
time per output chunk."""

_KEYS = METRIC_ATTRIBUTES


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
            attributes, operation, _ = gen_ai
            if operation is None:  # no GenAI operation (/v1/models, files): no GenAI metric
                self._delay(record, attributes, persisted_ns, add)
                continue
            service = record.service or None
            base = (*[attributes.get(k) for k in _KEYS], service)
            plain = self._sets.get(base)
            if plain is None:
                plain = {k: v for k, v in attributes.items() if k in _KEYS}
                if service:
                    plain["rawtap.service"] = service
                self._keep(base, plain)
            input_tokens, output_tokens = usage_totals(fields)
            if input_tokens is not None:
                key = (*base, "input")
                attrs = self._with(key, plain, "gen_ai.token.type", "input")
                add((TOKENS, key, attrs, input_tokens))
            if output_tokens is not None:
                key = (*base, "output")
                attrs = self._with(key, plain, "gen_ai.token.type", "output")
                add((TOKENS, key, attrs, output_tokens))
            duration = (end_ns(record) - record.started_at_ns) / 1e9
            error = error_type(record)
            if error is None:
                add((DURATION, base, plain, duration))
            else:
                key = (*base, "\x00error", error)
                add((DURATION, key, self._with(key, plain, "error.type", error), duration))
            if record.stream:  # the conventions: streamed responses only
                if fields.ttft_ns is not None:
                    add((FIRST_CHUNK, base, plain, fields.ttft_ns / 1e9))
                gaps = chunk_gaps(record.chunks, fields.ttft_ns)
                if gaps:  # one run of values per record: a long stream has hundreds
                    add((PER_CHUNK, base, plain, gaps))
            self._delay(record, attributes, persisted_ns, add)
        return out

    def _delay(
        self, record: Record, attributes: dict[str, Any], persisted_ns: int, add: Any
    ) -> None:
        provider = attributes.get("gen_ai.provider.name", record.provider)
        key = ("\x00delay", provider)
        attrs = self._sets.get(key) or self._keep(key, {"gen_ai.provider.name": provider})
        add((DELAY, key, attrs, max(0, persisted_ns - record.captured_at_ns) / 1e9))


def chunk_gaps(chunks: Sequence[Chunk], first_ns: int | None) -> tuple[float, ...]:
    """``time_per_output_chunk`` values (s): for each chunk after the first one carrying output
    (at ``first_ns``; the first chunk when unknown), the time since the chunk before it."""
    if len(chunks) < 2:
        return ()
    offsets = [c.offset_ns for c in chunks]
    start = bisect_left(offsets, first_ns) if first_ns is not None else 0
    return tuple(
        (later - earlier) / 1e9
        for earlier, later in zip(offsets[start:], offsets[start + 1 :], strict=False)
    )
