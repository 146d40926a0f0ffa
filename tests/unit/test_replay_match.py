"""The IO-free half of replay: which record answers which request, in what order."""

from rawtap.shared import Record
from rawtap.tools.replay import MISS_PATH_CHARS, Matcher
from tests.support.records import make_record

URL = "https://api.openai.com/v1/chat/completions"


def _record(body: bytes, request_body: bytes, captured_at_ns: int, url: str = URL) -> Record:
    return make_record(body=body, url=url, request_body=request_body, started_at_ns=captured_at_ns)


def test_request_mode_matches_json_whatever_its_key_order_and_serves_attempts_in_order() -> None:
    first = _record(b"one", b'{"model": "m", "n": 1}', 2)
    retry = _record(b"two", b'{"n":1,"model":"m"}', 3)
    other = _record(b"other", b'{"model": "m", "n": 2}', 1)
    matcher = Matcher([retry, other, first], "request", max_misses=10)

    asked = b'{"n": 1, "model": "m"}'
    served = [matcher.lookup("post", "/v1/chat/completions", asked) for _ in range(3)]
    assert [r.body if r else None for r in served] == [b"one", b"two", b"two"]  # last repeated
    assert matcher.lookup("POST", "/v1/chat/completions", b'{"model":"m","n":2}') is other
    assert matcher.served == 4
    assert matcher.miss_count == 0


def test_path_and_sequence_modes_ignore_what_the_request_does_not_key_on() -> None:
    a = _record(b"a", b"x", 1)
    b = _record(b"b", b"y", 2, url="https://api.openai.com/v1/embeddings")
    by_path = Matcher([a, b], "path", max_misses=10)
    assert by_path.lookup("POST", "/v1/embeddings", b"anything") is b
    assert by_path.lookup("GET", "/v1/embeddings", b"") is None  # the method still counts

    in_order = Matcher([b, a], "sequence", max_misses=10)
    answers = [in_order.lookup("GET", "/nowhere", b"") for _ in range(3)]
    assert [r.body if r else None for r in answers] == [b"a", b"b", b"b"]


def test_misses_are_counted_all_and_kept_last_with_long_paths_cut() -> None:
    matcher = Matcher([], "request", max_misses=2)
    long_path = "/" + "p" * (MISS_PATH_CHARS * 2)
    for path in ("/a", "/b", long_path):
        assert matcher.lookup("POST", path, b"") is None
    assert matcher.miss_count == 3
    assert matcher.misses == ["POST /b", f"POST {long_path[:MISS_PATH_CHARS]}…"]
