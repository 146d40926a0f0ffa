"""Undoing Content-Encoding: gzip (with or without trailer), deflate, br, zstd, stacked."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from rawtap.shared import BodyDecodeError, decode_body, parse_duration
from rawtap.shared._decode import decode_chunks
from tests.support.records import make_record

DATA = ("naïve café " * 300).encode()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(DATA)),
        ("x-gzip", gzip.compress(DATA)),
        ("GZIP", gzip.compress(DATA)[:-8]),  # no CRC32/length trailer
        ("gzip", gzip.compress(DATA[:100]) + gzip.compress(DATA[100:])),  # two members
        ("deflate", zlib.compress(DATA)),
        ("deflate", _raw_deflate(DATA)),
        ("br", brotli.compress(DATA)),
        ("zstd", zstandard.ZstdCompressor().compress(DATA)),
        ("gzip, br", brotli.compress(gzip.compress(DATA))),
        ("identity", DATA),
        (None, DATA),
    ],
)
def test_decodes(encoding: str | None, encoded: bytes) -> None:
    assert decode_body(encoded, encoding) == DATA


def test_chunkwise_decoding_keeps_chunk_boundaries() -> None:
    compressor = zlib.compressobj(wbits=31)
    parts = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
    chunks = [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in parts]
    assert decode_chunks(chunks, "gzip") == parts
    # split inside the compressed stream: every byte still comes out, in order
    whole = b"".join(chunks)
    assert b"".join(decode_chunks([whole[:3], whole[3:20], whole[20:]], "gzip")) == b"".join(parts)


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b"definitely not gzip", "gzip"),
        ("compress", b"x", "unknown content encoding"),
        ("br", b"garbage here", "br"),
    ],
)
def test_bad_bodies_raise_one_clear_error(encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(BodyDecodeError, match=message):
        decode_body(body, encoding)


def test_record_decoded_body_uses_the_response_header() -> None:
    record = make_record(body=gzip.compress(DATA), headers=[("Content-Encoding", "gzip")])
    assert record.body != DATA  # stored as sent
    assert record.decoded_body() == DATA


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1.5h") == 5400
    assert parse_duration(" 2W ") == 14 * 86400
    for bad in ("", "30", "d", "-1d", "0s", "1y"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
