"""Socket rules: peer networks and loopback hosts."""

from __future__ import annotations

import pytest

from webchat.roles.net import PeerRules, is_loopback


def test_peer_rules_allow_and_deny_networks() -> None:
    rules = PeerRules(allow=["10.0.0.0/8", "::1"], deny=["10.9.0.0/16"])
    assert rules.refusal("10.1.2.3") is None and rules.refusal("::1") is None
    assert "denied network 10.9.0.0/16" in str(rules.refusal("10.9.1.1"))
    assert "not in any allowed" in str(rules.refusal("192.168.1.1"))
    assert rules.refusal("::ffff:10.1.2.3") is None  # a dual-stack listener's IPv4 peer
    assert PeerRules([], []).refusal("203.0.113.9") is None
    with pytest.raises(ValueError, match="not an address or CIDR"):
        PeerRules(["example.org"], [])


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost", "127.8.0.1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.org"]))
