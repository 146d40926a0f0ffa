"""The provider table in rawtap.shared, and that the tap, derivation and telemetry read it."""

from __future__ import annotations

from rawtap.consumer.derivation import PARSER_OPERATIONS
from rawtap.consumer.derivation._parser import PARSERS
from rawtap.consumer.telemetry._genai import OPERATION, PROVIDER_NAME, SYSTEM
from rawtap.shared import PROVIDERS, names_read_as, provider_from_host, terminal_markers


def test_names_are_unique_and_lower_case() -> None:
    names = [n for p in PROVIDERS for n in (p.name, *p.aliases)]
    assert len(names) == len(set(names))
    assert all(n == n.lower() for n in names)


def test_no_host_is_a_subdomain_of_another_providers_so_table_order_never_matters() -> None:
    owned = [(h, p.name) for p in PROVIDERS for h in p.hosts]
    for host, name in owned:
        for other, other_name in owned:
            if other_name != name:
                assert not host.endswith("." + other), (host, other)


def test_every_host_names_its_provider() -> None:
    for p in PROVIDERS:
        for host in p.hosts:
            assert provider_from_host(host) == p.name
            assert provider_from_host("api." + host.upper()) == p.name


def test_every_wire_format_is_a_parser_that_reads_those_names() -> None:
    for p in PROVIDERS:
        if p.wire_format is not None:
            assert p.wire_format in PARSERS
            assert {p.name, *p.aliases} <= PARSERS[p.wire_format].providers
    for name, parser in PARSERS.items():
        assert parser.providers == names_read_as(name)


def test_terminal_markers_are_every_providers_each_once() -> None:
    markers = terminal_markers()
    assert len(markers) == len(set(markers))
    assert set(markers) == {m for p in PROVIDERS for m in p.terminal_markers}
    assert b"data: [DONE]" in markers


def test_telemetry_names_come_from_the_table_and_the_parsers() -> None:
    assert PROVIDER_NAME["gemini"] == "gcp.gemini"
    assert SYSTEM["gemini"] == "gemini"
    assert all(PROVIDER_NAME[p.name] and SYSTEM[p.name] for p in PROVIDERS)
    assert OPERATION == PARSER_OPERATIONS
    assert set(OPERATION) == set(PARSERS)


def test_the_sdk_modules_are_distinct() -> None:
    modules = [p.sdk.module for p in PROVIDERS if p.sdk is not None]
    assert len(modules) == len(set(modules))
