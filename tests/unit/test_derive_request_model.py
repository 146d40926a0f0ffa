"""The request's model: read by derive when asked (telemetry on), else only as the fallback."""

from __future__ import annotations

import orjson

from rawtap.consumer import derive
from rawtap.consumer.store._rows import derived_from_row, derived_values
from rawtap.consumer.telemetry._genai import gen_ai_attributes
from tests.support.records import make_record

CHAT = "https://api.openai.com/v1/chat/completions"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
_CHAT_BODY = orjson.dumps(
    {"object": "chat.completion", "model": "gpt-4o-2024-08-06", "choices": [], "usage": {}}
)


def test_derive_reads_the_request_model_when_asked_even_if_the_response_names_its_own() -> None:
    record = make_record(body=_CHAT_BODY, url=CHAT, request_body=b'{"model":"gpt-4o"}')
    d = derive(record, with_request_model=True)
    assert (d.model, d.request_model) == ("gpt-4o-2024-08-06", "gpt-4o")
    # Not asked (telemetry off): the request body, possibly megabytes, is left unparsed.
    assert derive(record).request_model is None


def test_unasked_the_request_model_is_still_the_fallback_model() -> None:
    no_model = orjson.dumps({"object": "chat.completion", "choices": [], "usage": {}})
    d = derive(make_record(body=no_model, url=CHAT, request_body=b'{"model":"gpt-4o"}'))
    assert (d.model, d.request_model) == ("gpt-4o", None)


def test_the_request_model_falls_back_to_the_url() -> None:
    d = derive(make_record("gemini", b'{"candidates":[]}', url=GEMINI), with_request_model=True)
    assert d.request_model == "gemini-2.5-flash"


def test_telemetry_takes_the_request_model_from_derived() -> None:
    record = make_record(body=_CHAT_BODY, url=CHAT, request_body=b'{"model":"gpt-4o"}')
    attributes, _, model = gen_ai_attributes(record, derive(record, with_request_model=True))
    assert model == attributes["gen_ai.request.model"] == "gpt-4o"


def test_the_request_model_is_not_stored_nor_dumped() -> None:
    record = make_record(body=_CHAT_BODY, url=CHAT, request_body=b'{"model":"gpt-4o"}')
    d = derive(record, with_request_model=True)
    assert "request_model" not in d.model_dump()
    assert "request_model" not in d.model_dump_json()
    back = derived_from_row(derived_values(d))
    assert back is not None
    assert back.request_model is None
    assert back.model_dump() == d.model_dump()


def test_an_unparsable_url_is_a_parse_error_not_an_exception() -> None:
    d = derive(make_record(body=b"{}", url="http://[::1/models/x"))
    assert d.request_model is None
    assert d.parse_error == "ValueError: Invalid IPv6 URL"
