"""Producer and record identifiers.

A ``record_id`` is 40 lowercase hex characters::

    0193a4b2c3d4  9f3c2a1b7e6d5c4b  00000000002a
    └ unix ms ─┘  └ producer_id ─┘  └── seq ──┘

so ids sort by capture time (to the millisecond), are unique by construction
(a random 64-bit producer id and that producer's gapless sequence number), and
can be rebuilt from the three numbers the hot path already holds: the producer
formats the string on its writer thread, not in ``record()``.
"""

import secrets

PRODUCER_ID_HEX = 16
_TIME_HEX = 12
_SEQ_HEX = 12


def new_producer_id() -> str:
    """A fresh random producer id (16 hex characters, 64 bits)."""
    return secrets.token_hex(PRODUCER_ID_HEX // 2)


def make_record_id(captured_at_ns: int, producer_id: str, seq: int) -> str:
    """The record id for ``seq`` of ``producer_id`` captured at ``captured_at_ns``."""
    return f"{captured_at_ns // 1_000_000:0{_TIME_HEX}x}{producer_id}{seq:0{_SEQ_HEX}x}"


def record_id_time_ms(record_id: str) -> int:
    """The unix time in milliseconds encoded at the front of ``record_id``."""
    return int(record_id[:_TIME_HEX], 16)
