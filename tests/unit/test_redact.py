"""Redaction's pure parts: names, URLs, spellings, compressed bodies, digests, display URLs."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from typing import Any

import orjson
import pytest

from rawtap.consumer.derivation import derive
from rawtap.producer import _redact
from rawtap.producer._serialize import serialize
from rawtap.shared import ProducerSettings, Record, decode_entry, display_url, scrub_text

SECRET = "sk-live-0123456789abcdefXYZ"


def _record(details: dict[str, Any], raw: object = None, cap: int = 8 * 1024 * 1024) -> Record:
    item = (0, 0, (1_700_000_000_000_000_000, "openai", raw, None, None, details))
    return decode_entry(serialize(item, "p" * 16, None, cap).entry)


def _auth(secret: str = SECRET) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {secret}")]


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("authorization", True),
        ("proxy-authorization", True),
        ("cookie", True),
        ("set-cookie", True),
        ("x-api-key", True),
        ("x-custom-api-key", True),
        ("x-goog-api-key", True),
        ("x-amz-security-token", True),
        ("x-client-secret", True),
        ("apikey", True),
        ("x-ratelimit-remaining-tokens", False),
        ("anthropic-ratelimit-output-tokens-limit", False),
        ("idempotency-key", False),
        ("content-type", False),
        ("keep-alive", False),
    ],
)
def test_credential_names_by_word(name: str, credential: bool) -> None:
    assert _redact.NameRule()(name) is credential


def test_extra_names_and_patterns_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWTAP_REDACT_NAMES", "X-Tenant-Pass, x-my-*")
    names = ProducerSettings().redact_names
    assert names == ("x-my-*", "x-tenant-pass")
    rule = _redact.NameRule(names)
    assert rule("x-tenant-pass")
    assert rule("x-my-anything")
    assert not rule("x-other")
    details: dict[str, Any] = {"request_headers": [("X-My-Thing", "v4lue-of-sixteen-b")]}
    item = (0, 0, (1_700_000_000_000_000_000, "openai", b"", None, None, details))
    rec = decode_entry(serialize(item, "p" * 16, None, 1 << 20, names).entry)
    assert rec.request_headers == [("X-My-Thing", "[REDACTED]")]


def test_headers_keep_the_scheme_and_every_value_is_masked_wherever_it_reappears() -> None:
    basic = base64.b64encode(b"alice:basic-password-1").decode()
    rec = _record(
        {
            "request_headers": [
                ("Authorization", f"Bearer {SECRET}"),
                ("Proxy-Authorization", f"Basic {basic}"),
                ("x-custom-api-key", "custom/key+value=99"),
                ("X-Echo", f"prefix {SECRET}"),
            ],
            "response_headers": [("Set-Cookie", "sid=cookie-value-123456; HttpOnly")],
            "request_body": orjson.dumps({"a": SECRET, "b": "basic-password-1"}),
            "error": f"failed with custom/key+value=99 and {SECRET}",
            "url": "https://h/v1/x?echo=custom%2Fkey%2Bvalue%3D99",
        },
        raw=b'{"k":"'
        + SECRET.encode()
        + b'","c":"cookie-value-123456","j":"custom\\/key+value=99"}',
    )
    headers = dict(rec.request_headers)
    assert headers["Authorization"] == "Bearer [REDACTED]"
    assert headers["Proxy-Authorization"] == "Basic [REDACTED]"
    assert headers["x-custom-api-key"] == "[REDACTED]"
    assert headers["X-Echo"] == "prefix [REDACTED]"
    assert dict(rec.response_headers)["Set-Cookie"] == "[REDACTED]"
    dump = rec.model_dump_json().encode() + rec.body + rec.request_body
    for value in (SECRET, "basic-password-1", "custom/key+value=99", "cookie-value-123456"):
        assert value.encode() not in dump, value
    assert b"custom%2Fkey%2Bvalue%3D99" not in dump  # URL-encoded spelling
    assert b"custom\\/key+value=99" not in dump  # JSON-escaped spelling
    assert len(rec.body) == 61 + len(SECRET)  # masks keep lengths
    assert rec.masked >= 8
    assert set(rec.masked_in) == {"headers", "url", "request_body", "body", "error"}


def test_url_credentials_userinfo_query_and_path() -> None:
    found = _redact.Masking()
    rule = _redact.NameRule()
    url = _redact.url(
        "https://bob:pa55word-xyz@h.example/v1/key/path-secret-1234/models/"
        "sk-proj-abcdefghijklmnop1234:generate?alt=sse&access_token=tok-9876543210&x=1#f",
        rule,
        found,
    )
    assert url == (
        "https://bob:[REDACTED]@h.example/v1/key/[REDACTED]/models/[REDACTED]:generate"
        "?alt=sse&access_token=[REDACTED]&x=1#f"
    )
    assert {b"pa55word-xyz", b"path-secret-1234", b"sk-proj-abcdefghijklmnop1234"} <= set(
        found.secrets
    )
    assert b"tok-9876543210" in found.secrets
    assert found.count == 4
    plain = "https://api.openai.com/v1/chat/completions"
    assert _redact.url(plain, rule, _redact.Masking()) == plain


def test_a_secret_split_over_chunks_is_masked_and_chunk_sizes_stay() -> None:
    body = b'data: {"echo":"' + SECRET.encode() + b'"}\n\n'
    chunks = [body[:18], body[18:25], body[25:]]  # the secret spans three chunks
    rec = _record({"chunks": chunks, "request_headers": _auth()})
    assert [c.size for c in rec.chunks] == [len(c) for c in chunks]
    assert SECRET.encode() not in rec.body
    assert _redact.mask(SECRET.encode()) in rec.body


def test_a_body_cut_inside_a_secret_has_the_partial_secret_masked() -> None:
    body = b"x" * 100 + SECRET.encode()[:12]  # the tap kept the first bytes only
    rec = _record({"chunks": [body], "request_headers": _auth()})
    assert rec.body.endswith(b"*" * 12)
    assert SECRET.encode()[:12] not in rec.body


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_bodies_are_decoded_masked_and_say_so(coding: str) -> None:
    import brotli
    import zstandard

    plain = b'{"model":"' + SECRET.encode() + b'","text":"hello"}'
    encoded = {
        "gzip": gzip.compress(plain),
        "deflate": zlib.compress(plain),
        "br": brotli.compress(plain),
        "zstd": zstandard.ZstdCompressor().compress(plain),
    }[coding]
    rec = _record(
        {
            "request_headers": _auth(),
            "response_headers": [("Content-Encoding", coding), ("Content-Type", "x/json")],
        },
        raw=encoded,
    )
    assert rec.body == plain.replace(SECRET.encode(), _redact.mask(SECRET.encode()))
    assert rec.body_decoded_from == coding
    assert rec.encoded_size == len(encoded)
    assert rec.response_headers == [("Content-Type", "x/json")]
    assert rec.decoded_body() == rec.body


def test_a_corrupt_compressed_body_is_withheld_not_stored() -> None:
    rec = _record(
        {"request_headers": _auth(), "response_headers": [("Content-Encoding", "br")]},
        raw=b"\xff\xfe not brotli " + SECRET.encode(),
    )
    assert rec.body == b""
    assert rec.encoded_size is not None
    assert rec.error is not None
    assert "withheld" in rec.error
    assert SECRET not in rec.model_dump_json()


def test_a_zip_bomb_stops_at_the_cap() -> None:
    cap = 1 << 20
    bomb = gzip.compress(b"\0" * (64 << 20) + SECRET.encode())  # 64 MB of zeros, ~64 KB
    tracemalloc.start()
    try:
        rec = _record(
            {"request_headers": _auth(), "response_headers": [("Content-Encoding", "gzip")]},
            raw=bomb,
            cap=cap,
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * cap  # a generous bound: decoding never holds the 64 MB
    assert len(rec.body) <= cap
    assert rec.body_decoded_from == "gzip"
    assert rec.error is not None
    assert "passed" in rec.error


def test_a_secret_only_derivation_joins_is_masked_in_derived_text() -> None:
    key = "sk-split-secret-abcdef0123456789"

    def event(delta: str) -> bytes:
        doc: dict[str, Any] = {"object": "chat.completion.chunk", "model": "m"}
        doc["choices"] = [{"index": 0, "delta": {"content": delta}}]
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    chunks = [event("key: "), event(key[:5]), event(key[5:20]), event(key[20:]), event(" ok")]
    rec = _record(
        {
            "chunks": [*chunks, b"data: [DONE]\n\n"],
            "stream": True,
            "url": "https://api.openai.com/v1/chat/completions",
            "request_headers": _auth(key),
            "response_headers": [("Content-Type", "text/event-stream")],
        }
    )
    assert key.encode() not in rec.body  # never whole in the stored bytes
    assert rec.masked_digests
    assert key not in rec.model_dump_json()
    derived = derive(rec)
    assert derived.text == "key: [REDACTED] ok"
    unmasked = derive(rec.model_copy(update={"masked_digests": []}))
    assert unmasked.text == f"key: {key} ok"  # what derivation would have stored


def test_old_records_without_the_new_fields_still_read() -> None:
    rec = _record({})
    assert rec.masked == 0
    assert rec.masked_in == []
    assert rec.masked_digests == []
    assert rec.body_decoded_from is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://root:pw1@db:5432/x?schema=a", "postgresql://root:***@db:5432/x?schema=a"),
        ("postgres://db/x?password=pw1&schema=q", "postgres://db/x?password=***&schema=q"),
        ("redis://user:pw1@h:6379/0", "redis://user:***@h:6379/0"),
        ("rediss://:pw1@h:6380/0", "rediss://:***@h:6380/0"),
        ("redis+cluster://:pw1@a:1,b:2,c:3", "redis+cluster://:***@a:1,b:2,c:3"),
        ("redis://:p%40ss@h/0", "redis://:***@h/0"),
        ("sqlite:///rawtap.db", "sqlite:///rawtap.db"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_display_url_hides_passwords(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_scrub_text_hides_urls_and_conninfo_passwords() -> None:
    text = "cannot connect: postgresql://u:pw1@h/db (host=h password='p w' dbname=x) password=pw2"
    scrubbed = scrub_text(text)
    assert "pw1" not in scrubbed
    assert "p w" not in scrubbed
    assert "pw2" not in scrubbed
    assert "postgresql://u:***@h/db" in scrubbed
