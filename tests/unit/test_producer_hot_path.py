"""The producer's fast paths agree with what they replace: RESP packing, the URL check, GC."""

from __future__ import annotations

import gc

import pytest
import redis
from redis.connection import Connection, parse_url

from rawtap.producer._buffer import RecordBuffer
from rawtap.producer._url import check_redis_url
from rawtap.producer._writer._resp import XaddPacker


def _redis_py_bytes(entries: list[tuple[str, dict[bytes, bytes]]], maxlen: int) -> bytes:
    """What redis-py's pipeline sends for the same ``XADD … MAXLEN ~`` commands."""
    commands = []
    for stream, fields in entries:
        args: list[object] = ["XADD", stream, "MAXLEN", "~", str(maxlen), "*"]
        for k, v in fields.items():
            args += [k, v]
        commands.append(args)
    return b"".join(Connection().pack_commands(commands))  # type: ignore[no-untyped-call]


def test_hand_packed_xadd_batches_are_byte_for_byte_redis_pys() -> None:
    big = b"x" * 40_000
    entries = [
        ("p:{0}", {b"v": b"1", b"rid": b"abc", b"env": b'{"a":1}', b"req": b"", b"body": big}),
        ("p:{1}", {b"v": b"1", b"body": "é".encode()}),
        ("p:{0}", {b"k": b"\r\n\x00"}),
    ]
    packed = XaddPacker(1_000_000).pack(entries)
    assert b"".join(packed) == _redis_py_bytes(entries, 1_000_000)
    assert any(part is big for part in packed)  # a large body is sent as is, not copied


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://u:p@host/3?socket_timeout=2.5",
        "unix:///tmp/redis.sock?db=2",
        "redis://host:notaport/0",
        "redis://host:99999/0",
        "redis://host/0?socket_timeout=abc",
        "redis://host/0?db=x",
        "http://host/0",
        "rediss://host/0?ssl_include_verify_flags=[VERIFY_X509_STRICT,%20VERIFY_CRL_CHECK_LEAF]",
        "rediss://host/0?ssl_exclude_verify_flags=VERIFY_NOPE",
        "rediss://host/0?ssl_include_verify_flags=bogus",
        "redis://[::1]:6380/1?retry_on_error=x",
    ],
)
def test_url_check_refuses_what_redis_py_refuses(url: str) -> None:
    def outcome(check: object) -> str:
        try:
            check(url)  # type: ignore[operator]
        except ValueError as e:
            return f"refused: {e}"
        return "accepted"

    assert outcome(check_redis_url) == outcome(parse_url)


def test_buffered_records_are_untracked_before_the_oldest_generation() -> None:
    buffer = RecordBuffer(1 << 30, 10_000)
    metadata = {"endpoint": "/v1/chat/completions"}
    for i in range(1_000):
        buffer.put(300, i, "openai", b"body", "user-42", metadata, {"status": 200})
    items = list(buffer._items)
    gc.collect(1)  # a young pass: what survives it goes to the oldest generation
    assert sum(map(gc.is_tracked, items)) == 0
    taken = buffer.take(1_000)
    assert taken[7] == (7, 300, (7, "openai", b"body", metadata, "user-42", {"status": 200}))
    assert len(buffer._extras) == 0


def test_redis_py_is_a_plain_client() -> None:
    from rawtap.producer._writer._resp import is_plain_redis

    assert is_plain_redis(redis.Redis())
    assert not is_plain_redis(object())


def test_url_check_knows_every_query_argument_redis_py_validates() -> None:
    # A new redis-py argument with a parser that can refuse must be mirrored here, or a
    # URL refused on the writer thread would be accepted at construction (records spill).
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS

    from rawtap.producer._url import validated_arguments

    never_refused = {"retry_on_error"}  # parsed with list(), which takes any string
    assert validated_arguments() == set(URL_QUERY_ARGUMENT_PARSERS) - never_refused
