"""The dead-letter stream: list, show and requeue what workers gave up on.

A dead letter keeps the original entry's fields (prefixed ``f:``) next to why
it died (``error``), where it came from (``origin_stream``, ``origin_id``) and
how often it was delivered. Requeueing puts the original fields back on their
stream as a new entry and deletes the letter; the sink's idempotence makes a
requeue of something already stored harmless.
"""

from dataclasses import dataclass

import redis

from rawtap.consumer.store import DeadLetter
from rawtap.shared import ENTRY_RECORD_ID, reply_text

_FIELD_PREFIX = b"f:"


def dead_letter_fields(
    dead: DeadLetter, fields: dict[bytes, bytes], group: str, consumer: str
) -> dict[bytes, bytes]:
    """The dead-letter stream entry for ``dead``: why and where from, and the entry's own fields."""
    entry = {
        b"origin_stream": dead.stream.encode(),
        b"origin_id": dead.entry_id.encode(),
        b"group": group.encode(),
        b"consumer": consumer.encode(),
        b"error": dead.error.encode(),
        b"deliveries": str(dead.deliveries).encode(),
        b"dead_at_ms": str(dead.dead_at_ns // 1_000_000).encode(),
    }
    entry.update({_FIELD_PREFIX + name: value for name, value in fields.items()})
    return entry


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One entry of the dead-letter stream."""

    id: str
    origin_stream: str
    origin_id: str
    error: str
    deliveries: int
    dead_at_ms: int
    fields: dict[bytes, bytes]
    """The original entry's fields, as they were."""

    @property
    def record_id(self) -> str | None:
        """The record id the original entry carried, if readable."""
        rid = self.fields.get(ENTRY_RECORD_ID)
        return rid.decode("utf-8", "replace") if rid else None


def _parse(entry_id: bytes, raw: dict[bytes, bytes]) -> DeadLetterEntry:
    return DeadLetterEntry(
        id=entry_id.decode(),
        origin_stream=reply_text(raw.get(b"origin_stream")),
        origin_id=reply_text(raw.get(b"origin_id")),
        error=reply_text(raw.get(b"error")),
        deliveries=int(raw.get(b"deliveries") or 0),
        dead_at_ms=int(raw.get(b"dead_at_ms") or 0),
        fields={k[len(_FIELD_PREFIX) :]: v for k, v in raw.items() if k.startswith(_FIELD_PREFIX)},
    )


def list_dead_letters(
    client: "redis.Redis", stream: str, limit: int = 100
) -> list[DeadLetterEntry]:
    """The oldest ``limit`` dead letters."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream, count=limit)  # type: ignore[assignment]
    return [_parse(i, f) for i, f in entries]


def get_dead_letter(client: "redis.Redis", stream: str, letter_id: str) -> DeadLetterEntry | None:
    """One dead letter by its id in the dead-letter stream."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
        stream, min=letter_id, max=letter_id
    )
    return _parse(*entries[0]) if entries else None


def requeue(client: "redis.Redis", stream: str, letters: list[DeadLetterEntry]) -> int:
    """Put the letters' original entries back on their streams; return how many moved."""
    moved = 0
    for letter in letters:
        if not letter.origin_stream or not letter.fields:
            continue
        pipe = client.pipeline(transaction=False)
        pipe.xadd(letter.origin_stream, letter.fields)  # type: ignore[arg-type]
        pipe.xdel(stream, letter.id)
        pipe.execute()
        moved += 1
    return moved
