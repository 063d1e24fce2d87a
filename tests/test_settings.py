"""Settings: every flag parsed and validated once, into what the roles take."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from webchat.settings import Settings, Unusable


def settings(**flags: Any) -> Settings:
    return Settings(**flags)


def cause(**flags: Any) -> Exception:
    """The error a validator raised for these flags."""
    with pytest.raises(pydantic.ValidationError) as raised:
        settings(**flags)
    error = raised.value.errors()[0]
    found: Exception = error.get("ctx", {}).get("error") or ValueError(error["msg"])
    return found


def test_the_client_target_and_login_are_parsed_once() -> None:
    client = settings(role="client", connect="[::1]:7000", on_connect=["USER me\\r\\n", "\\x00"])
    assert client.target == ("::1", 7000)
    assert client.greeting == [b"USER me\r\n", b"\x00"]
    assert client.client_tls is None and not client.speaks_tls


def test_peer_rules_come_from_allow_and_deny() -> None:
    rules = settings(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"]).rules
    assert rules.refusal("10.1.1.1") is None and rules.refusal("10.9.1.1")


def test_malformed_values_and_unusable_ones_are_told_apart() -> None:
    assert isinstance(cause(role="client", connect="localhost"), Unusable)  # CLI exit 1
    assert isinstance(cause(tcp_tls_cert="/nonexistent.pem"), Unusable)
    malformed: list[tuple[dict[str, Any], str]] = [
        ({"on_connect": ["\\q"]}, "unknown escape"),
        ({"allow": ["example.org"]}, "not an address or CIDR"),
        ({"tcp_tls_key": "k.pem"}, "--tcp-tls-key needs --tcp-tls-cert"),
        ({"role": "client"}, "--connect"),
    ]
    for flags, words in malformed:
        problem = cause(**flags)
        assert not isinstance(problem, Unusable) and words in str(problem)


@pytest.mark.parametrize(
    ("flags", "delay"),
    [
        ({}, 0.2),
        ({"framing": "crlf"}, None),
        ({"framing": "nul"}, None),
        ({"flush_after": 0}, None),
        ({"framing": "crlf", "flush_after": 1.5}, 1.5),
    ],
)
def test_partial_lines_are_flushed_in_line_framing_only_unless_told(
    flags: dict[str, Any], delay: float | None
) -> None:
    assert settings(**flags).peer_options.flush_after == delay
