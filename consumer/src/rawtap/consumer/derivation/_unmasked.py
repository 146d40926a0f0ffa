"""Masking, in derived fields, the credentials that only derivation joins together.

The producer masks every credential it finds in the stored bytes, but a key a
model echoes over several stream deltas (``"sk-ab"``, ``"cd…"``) is contiguous
only once the deltas are joined into ``text``. The producer cannot store the
key, so it stores keyed digests of it (``Record.masked_digests``: length and
BLAKE2b keyed with the record id); here every window of that length in a
derived string (within a run of non-blank characters) is hashed and compared,
and a match is replaced by ``[REDACTED]``.
"""

import hashlib
import re

from rawtap.consumer.derivation._derived import Derived, ToolCall
from rawtap.shared import Record

REDACTED = "[REDACTED]"


class DigestMatcher:
    """Finds the secrets behind one record's ``masked_digests`` in text."""

    def __init__(self, record: Record) -> None:
        self._key = record.record_id.encode()[:64]
        self._by_length: dict[int, set[str]] = {}
        for item in record.masked_digests:
            length, _colon, digest = item.partition(":")
            if length.isdigit() and digest:
                self._by_length.setdefault(int(length), set()).add(digest)
        self._runs = {n: re.compile(rf"\S{{{n},}}") for n in self._by_length}

    def mask(self, text: str) -> str:
        """``text`` with every window matching a digest replaced by ``[REDACTED]``."""
        for length, digests in self._by_length.items():
            spans: list[tuple[int, int]] = []
            for run in self._runs[length].finditer(text):
                start, end = run.span()
                i = start
                while i + length <= end:
                    window = text[i : i + length].encode("utf-8", "surrogatepass")
                    if hashlib.blake2b(window, key=self._key, digest_size=8).hexdigest() in digests:
                        spans.append((i, i + length))
                        i += length
                    else:
                        i += 1
            for start, end in reversed(spans):
                text = text[:start] + REDACTED + text[end:]
        return text


def mask_derived(derived: Derived, record: Record) -> Derived:
    """``derived`` with the record's digested secrets masked in its text fields."""
    if not record.masked_digests:
        return derived
    matcher = DigestMatcher(record)
    changes: dict[str, object] = {}
    if derived.text:
        text = matcher.mask(derived.text)
        if text != derived.text:
            changes["text"] = text
    if derived.provider_error:
        error = matcher.mask(derived.provider_error)
        if error != derived.provider_error:
            changes["provider_error"] = error
    if derived.tool_calls:
        calls = [
            ToolCall(id=call.id, name=call.name, arguments=matcher.mask(call.arguments))
            for call in derived.tool_calls
        ]
        if calls != derived.tool_calls:
            changes["tool_calls"] = calls
    return derived.model_copy(update=changes) if changes else derived
