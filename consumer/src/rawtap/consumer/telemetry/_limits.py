"""The SDK's span limits on rawtap's spans: attribute count and value length, events.

``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``
(``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``), ``OTEL_SPAN_EVENT_COUNT_LIMIT`` and
``OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`` as ``SpanLimits()`` reads them, applied
by the SDK's own ``BoundedAttributes`` (the oldest keys go first, strings are
cut) only when a limit can bite: the defaults leave rawtap's spans whole.
"""

from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes


def bound(
    attributes: Mapping[str, Any], count: int | None, length: int | None
) -> tuple[Mapping[str, Any], int]:
    """``attributes`` as the SDK would keep them under these limits, and how many it dropped."""
    if length is None and (count is None or len(attributes) <= count):
        return attributes, 0
    kept = BoundedAttributes(count, attributes, immutable=False, max_value_len=length)
    return kept, kept.dropped
