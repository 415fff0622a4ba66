"""Which addresses a peer's claim may make us dial (``app.node.addr_policy``)."""

from __future__ import annotations

import ipaddress

import pytest

from app.node.addr_policy import local_networks, refusal, socket_key, tcp_endpoint

OURS = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "192.168.1.0/24", "::1/128",
                                          "fd00:1::/64")]


@pytest.mark.parametrize("addr", [
    "/ip4/203.0.113.7/tcp/4001",
    "/ip4/198.51.100.2/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp",
    "/ip4/8.8.8.8/tcp/443",
    "/ip6/2001:db8::1/tcp/4001",
    "/ip4/192.168.1.20/tcp/4001",  # a private network we are on
    "/ip4/127.0.0.1/tcp/4001",
    "/ip6/fd00:1::5/tcp/4001",
])
def test_dialable(addr: str) -> None:
    assert refusal(addr, OURS) is None


@pytest.mark.parametrize(("addr", "why"), [
    ("/dns4/metadata.google.internal/tcp/80", "DNS"),
    ("/dns/kith.example/tcp/4001", "DNS"),
    ("/ip4/203.0.113.7/udp/4001/quic-v1", "plain TCP"),
    ("/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
     "/p2p-circuit", "plain TCP"),
    ("/ip4/203.0.113.7/tcp/0", "port 0"),
    ("/ip4/0.0.0.0/tcp/22", "unspecified"),
    ("/ip4/0.1.2.3/tcp/22", "unspecified"),
    ("/ip6/::/tcp/22", "unspecified"),
    ("/ip4/224.0.0.1/tcp/80", "multicast"),
    ("/ip6/ff02::1/tcp/80", "multicast"),
    ("/ip4/169.254.169.254/tcp/80", "link-local"),
    ("/ip6/fe80::1/tcp/80", "link-local"),
    ("/ip4/255.255.255.255/tcp/80", "broadcast"),
    ("/ip4/240.0.0.9/tcp/80", "reserved"),
    ("/ip6/::ffff:127.0.0.1/tcp/80", "IPv4-mapped"),
    ("/ip4/10.0.0.5/tcp/22", "private"),
    ("/ip4/172.20.0.1/tcp/22", "private"),
    ("/ip4/100.64.0.1/tcp/22", "private"),
    ("/ip4/192.168.2.1/tcp/22", "private"),  # a private network we are not on
    ("/ip6/fd00:2::1/tcp/22", "private"),
    ("/ip4/192.168.1.255/tcp/22", "private"),  # our network's broadcast address
    ("/ip4/192.168.1.0/tcp/22", "private"),
])
def test_refused(addr: str, why: str) -> None:
    reason = refusal(addr, OURS)
    assert reason is not None and why.lower() in reason.lower(), reason


def test_socket_keys_and_endpoints() -> None:
    full = "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    assert socket_key(full) == "/ip4/203.0.113.7/tcp/4001"
    assert socket_key("/ip4/203.0.113.7/tcp/4001/ws") is None
    assert socket_key("/ip4/999.0.0.1/tcp/1") is None
    assert socket_key("/ip6/203.0.113.7/tcp/1") is None
    assert tcp_endpoint("/ip6/2001:db8::1/tcp/9") == (ipaddress.ip_address("2001:db8::1"), 9)


def test_our_networks_include_loopback() -> None:
    assert any(ipaddress.ip_address("127.0.0.1") in net for net in local_networks())
    assert refusal("/ip4/127.0.0.1/tcp/4001") is None
