"""The overview: calls, errors, tokens and latency over time, by provider and model.

The store hands over the newest matching calls' figures (``Store.call_facts``, at
most :data:`FACTS_LIMIT`); they are bucketed and their percentiles computed here,
the same way on both stores. When the range holds more calls than that, the page
says which part of it the figures cover.
"""

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rawtap.consumer.console._charts import Chart, lines, stacked_bars
from rawtap.consumer.console._scale import fmt_ms
from rawtap.consumer.store import CallFacts

FACTS_LIMIT = 10_000
"""Calls the overview reads at most (the newest of the range): a page in 200 ms on 2 cores."""

BUCKETS = 48
_STEPS_S = (60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
_FAILED_STATES = frozenset({"error", "transport_error"})


def is_error(fact: CallFacts) -> bool:
    """A call that failed: an HTTP status of 400 or more, or the exchange failed.

    ``error`` (the body broke off) and ``transport_error`` (no response) count; a
    stream the caller stopped (``closed_early``, ``cancelled``, ``abandoned``) does not.
    """
    return (fact.status is not None and fact.status >= 400) or fact.end_state in _FAILED_STATES


def percentile(sorted_values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` from 0 to 1) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * share // 1))
    return sorted_values[int(rank) - 1]


def bucket_seconds(span_s: float) -> int:
    """A round bucket width giving at most :data:`BUCKETS` buckets over ``span_s``.

    Past a week a bucket, whole weeks: a range of a century is still 48 buckets.
    """
    step = next((s for s in _STEPS_S if span_s / s <= BUCKETS), None)
    if step is not None:
        return step
    week = _STEPS_S[-1]
    return int(-(-span_s // (BUCKETS * week)) * week)


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One line of the by-model table."""

    provider: str
    model: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    p50_ms: float | None
    p95_ms: float | None
    ttft_p50_ms: float | None

    @property
    def error_rate(self) -> str:
        """Errors as a percentage of calls."""
        return f"{100 * self.errors / self.calls:.1f}%" if self.calls else "-"


@dataclass(frozen=True, slots=True)
class Overview:
    """The overview page's figures and charts."""

    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    p50_ms: float | None
    p95_ms: float | None
    capped: bool
    covered_since_ns: int | None
    charts: list[Chart]
    models: list[ModelRow]
    bucket_s: int


def _labels(first_ns: int, step_ns: int, count: int, bucket_s: int) -> list[str]:
    """Bucket labels: the date, and the time of day for buckets under a day (UTC)."""
    out = []
    for i in range(count):
        t = time.gmtime((first_ns + i * step_ns) // 1_000_000_000)
        form = (
            "%Y-%m-%d" if bucket_s >= 7 * 86400 else "%b %d" if bucket_s >= 86400 else "%b %d %H:%M"
        )
        out.append(time.strftime(form, t))
    return out


def _latency_ms(fact: CallFacts) -> float | None:
    return fact.ended_ns / 1e6 if fact.ended_ns is not None else None


def build_overview(
    facts: Sequence[CallFacts], since_ns: int, until_ns: int, *, limit: int = FACTS_LIMIT
) -> Overview:
    """Bucket ``facts`` (newest first, as the store returns them) over ``[since, until)``."""
    capped = len(facts) >= limit
    start = min((f.started_at_ns for f in facts), default=since_ns) if capped else since_ns
    span_s = max(1.0, (until_ns - start) / 1e9)
    step_s = bucket_seconds(span_s)
    step = step_s * 1_000_000_000
    first = start // step * step
    count = max(1, -(-(until_ns - first) // step))
    labels = _labels(first, step, count, step_s)
    providers = sorted({f.provider for f in facts})
    calls = {p: [0.0] * count for p in providers}
    errors = {p: [0.0] * count for p in providers}
    tokens: dict[str, list[float]] = {"input": [0.0] * count, "output": [0.0] * count}
    latencies: list[list[float]] = [[] for _ in range(count)]
    by_model: dict[tuple[str, str], list[CallFacts]] = defaultdict(list)
    inputs, outputs = tokens["input"], tokens["output"]
    failed = [is_error(f) for f in facts]
    last = count - 1
    for f, bad in zip(facts, failed, strict=True):
        i = (f.started_at_ns - first) // step
        i = last if i > last else 0 if i < 0 else i
        calls[f.provider][i] += 1
        if bad:
            errors[f.provider][i] += 1
        inputs[i] += f.input_tokens or 0
        outputs[i] += f.output_tokens or 0
        if f.ended_ns is not None:
            latencies[i].append(f.ended_ns / 1e6)
        by_model[(f.provider, f.model or "-")].append(f)
    for bucket in latencies:
        bucket.sort()
    every = sorted(ms for bucket in latencies for ms in bucket)
    charts = [
        stacked_bars("Calls", labels, calls),
        stacked_bars("Errors (status ≥ 400, or the exchange failed)", labels, errors),
        stacked_bars("Tokens", labels, tokens),
        lines(
            "Latency (request start to end)",
            labels,
            {
                "p50": [percentile(b, 0.5) for b in latencies],
                "p95": [percentile(b, 0.95) for b in latencies],
            },
            label_of=fmt_ms,
        ),
    ]
    return Overview(
        calls=len(facts),
        errors=sum(failed),
        input_tokens=int(sum(inputs)),
        output_tokens=int(sum(outputs)),
        p50_ms=percentile(every, 0.5),
        p95_ms=percentile(every, 0.95),
        capped=capped,
        covered_since_ns=start if capped else None,
        charts=charts,
        models=sorted(
            (_model_row(p, m, fs) for (p, m), fs in by_model.items()),
            key=lambda r: (-r.calls, r.provider, r.model),
        ),
        bucket_s=step_s,
    )


def _model_row(provider: str, model: str, facts: list[CallFacts]) -> ModelRow:
    latency = sorted(ms for f in facts if (ms := _latency_ms(f)) is not None)
    ttft = sorted(f.ttft_ns / 1e6 for f in facts if f.ttft_ns is not None)
    return ModelRow(
        provider=provider,
        model=model,
        calls=len(facts),
        errors=sum(1 for f in facts if is_error(f)),
        input_tokens=sum(f.input_tokens or 0 for f in facts),
        output_tokens=sum(f.output_tokens or 0 for f in facts),
        p50_ms=percentile(latency, 0.5),
        p95_ms=percentile(latency, 0.95),
        ttft_p50_ms=percentile(ttft, 0.5),
    )
