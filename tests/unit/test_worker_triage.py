"""The worker's IO-free triage core, on plain data: no Redis, no sink."""

import orjson
import pytest

from rawtap.consumer.worker._triage import Triage, triage
from rawtap.shared import (
    Chunk,
    CodecError,
    EntryError,
    ProducerReport,
    Record,
    decode_entry,
    encode_entry,
    encode_report,
    entry_identity,
    schema_problem,
)

STREAM = "rawtap:{0}"
NOW = 1_700_000_000_000_000_000


def _record(seq: int = 0) -> Record:
    return Record(
        record_id=f"r-{seq}",
        producer_id="p" * 16,
        seq=seq,
        provider="openai",
        body=b"data: 1\n\ndata: 2\n\n",
        stream=True,
        chunks=[Chunk(5, 9), Chunk(9, 9)],
        started_at_ns=NOW,
        captured_at_ns=NOW,
    )


def _bad() -> dict[bytes, bytes]:
    entry = encode_entry(_record(7))
    envelope = orjson.loads(entry[b"env"])
    envelope["seq"] = 2**63  # beyond what a store holds: refused on ingress
    entry[b"env"] = orjson.dumps(envelope)
    return entry


def _sorted(entries: list[tuple[bytes, dict[bytes, bytes] | None]], **deliveries: int) -> Triage:
    counts = {k.replace("_", "-").encode(): v for k, v in deliveries.items()}
    return triage(STREAM, entries, counts, max_deliveries=5, now_ns=NOW)


def test_a_good_record_is_kept_with_its_entry_id() -> None:
    out = _sorted([(b"1-0", encode_entry(_record()))])
    assert out.records == [(b"1-0", _record())]
    assert (out.reports, out.letters, out.trimmed) == ([], [], [])


def test_each_record_keeps_its_envelope_as_it_arrived() -> None:
    entry = encode_entry(_record(1))
    spaced = orjson.dumps(orjson.loads(entry[b"env"]), option=orjson.OPT_INDENT_2)
    out = _sorted([(b"1-0", _bad()), (b"2-0", {**entry, b"env": spaced}), (b"3-0", entry)])
    assert [entry_id for entry_id, _ in out.records] == [b"2-0", b"3-0"]
    assert out.envelopes == [spaced, entry[b"env"]]  # one per record, the refused one skipped


def test_a_report_is_accounted_not_stored() -> None:
    report = ProducerReport(producer_id="p" * 16, next_seq=3, dropped={"full": [(1, 1)]}, at_ns=1)
    out = _sorted([(b"1-0", encode_report(report))])
    assert out.reports == [report]
    assert (out.records, out.letters) == ([], [])


def test_a_trimmed_entry_is_named_and_never_decoded() -> None:
    out = _sorted([(b"1-0", None), (b"2-0", {})])
    assert out.trimmed == ["1-0", "2-0"]
    assert (out.records, out.letters) == ([], [])


def test_an_over_delivered_entry_is_dead_lettered_without_being_decoded() -> None:
    fields = encode_entry(_record(4))
    fields[b"body"] = b"short"  # would not decode either: the count decides first
    out = _sorted([(b"1-0", fields), (b"2-0", encode_entry(_record(5)))], **{"1_0": 6, "2_0": 5})
    ((entry_id, kept, dead),) = out.letters
    assert (entry_id, kept) == (b"1-0", fields)
    assert dead.error == "delivered 6 times without being committed"
    assert (dead.deliveries, dead.dead_at_ns, dead.stream, dead.entry_id) == (6, NOW, STREAM, "1-0")
    assert (dead.record_id, dead.producer_id, dead.seq) == ("r-4", "p" * 16, 4)
    assert [r.seq for _, r in out.records] == [5]  # five deliveries are still allowed


def test_a_bad_entry_is_dead_lettered_naming_its_producer_and_seq() -> None:
    garbage = {b"v": b"1", b"env": b"{broken", b"req": b"", b"body": b""}
    out = _sorted([(b"1-0", _bad()), (b"2-0", garbage), (b"3-0", encode_entry(_record(3)))])
    first, second = (dead for _, _, dead in out.letters)
    assert "seq 9223372036854775808 is outside" in first.error
    assert (first.record_id, first.producer_id, first.seq, first.deliveries) == (
        "r-7",
        "p" * 16,
        2**63,
        1,
    )
    assert "envelope is not valid JSON" in second.error
    assert (second.record_id, second.producer_id, second.seq) == (None, None, None)
    assert [entry_id for entry_id, _ in out.records] == [b"3-0"]


def test_a_forged_report_is_dead_lettered_under_its_producer() -> None:
    env = {"type": "producer_report", "producer_id": "q" * 16, "next_seq": 2, "at_ns": 1,
           "dropped": {"x": [[4, 0]]}}  # fmt: skip
    out = _sorted([(b"1-0", {b"kind": b"report", b"env": orjson.dumps(env)})])
    ((_, _, dead),) = out.letters
    assert "reversed or negative" in dead.error
    assert (dead.producer_id, dead.seq) == ("q" * 16, None)
    assert out.reports == []


def test_decode_names_the_producer_from_its_one_parse() -> None:
    with pytest.raises(EntryError) as caught:
        decode_entry(_bad())
    assert isinstance(caught.value, CodecError)
    assert (caught.value.producer_id, caught.value.seq) == ("p" * 16, 2**63)
    assert entry_identity(_bad()) == ("p" * 16, 2**63)
    assert entry_identity({b"env": b"[1]"}) == (None, None)


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        (1, None),
        (b"1", None),
        (b"01", "schema version b'01' is not supported (this release reads version 1)"),
        (
            b"2",
            "schema version b'2' is not supported (this release reads version 1): "
            "upgrade rawtap to read it",
        ),
        (0, "schema version 0 is not supported (this release reads version 1)"),
        (True, "schema version True is not supported (this release reads version 1)"),
    ],
)
def test_one_schema_rule_for_entries_and_stored_rows(version: object, problem: str | None) -> None:
    assert schema_problem(version) == problem


@pytest.mark.parametrize("spelling", [1.0, "1", True, " 1"])
def test_an_envelope_version_validation_would_coerce_is_refused_on_ingress(
    spelling: object,
) -> None:
    # Stored as it arrived, it would be refused on every read (the rule of stored rows).
    entry = encode_entry(_record())
    entry[b"env"] = orjson.dumps({**orjson.loads(entry[b"env"]), "schema_version": spelling})
    with pytest.raises(EntryError, match=r"schema_version .* is not supported"):
        decode_entry(entry)


def test_the_envelope_must_agree_with_the_entry_version() -> None:
    entry = encode_entry(_record())
    entry[b"env"] = orjson.dumps({**orjson.loads(entry[b"env"]), "schema_version": 99})
    with pytest.raises(EntryError, match="schema_version 99 is not supported"):
        decode_entry(entry)


def test_chunks_from_json_and_from_code_validate_alike() -> None:
    from_json = decode_entry(encode_entry(_record())).chunks
    assert from_json == _record().chunks
    assert all(type(c).__name__ == "Chunk" for c in from_json)
    assert from_json[1].offset_ns == 9
    # What is not a pair of ints gets pydantic's own coercion and messages.
    coerced = Record.model_validate(
        {**_record().model_dump(), "chunks": [[5.0, "9"], {"offset_ns": 9, "size": 9}]}
    )
    assert coerced.chunks == _record().chunks
    with pytest.raises(ValueError, match="should be a tuple, list, dictionary"):
        Record.model_validate({**_record().model_dump(), "chunks": [b"ab", [0, 16]]})
