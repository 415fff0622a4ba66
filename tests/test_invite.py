"""Contact links: round trip, and every malformed link refused with a plain message."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.identity import Identity
from app.core.invite import ContactInvite, InvalidInvite, clean_display_name, parse_invite

PEER = Identity(b"\x07" * 32).peer_id


def test_round_trip_with_unicode_name_and_addresses() -> None:
    invite = ContactInvite(PEER, "Zoë & Ada?", ("/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"))
    link = invite.to_link()
    assert link.startswith(f"kith:contact?id={PEER}")
    assert parse_invite(link) == invite
    assert parse_invite("  " + link.upper()[:5].lower() + link[5:] + "\n") == invite


def test_p2p_suffix_is_stripped() -> None:
    link = ContactInvite(PEER, "", (f"/ip4/127.0.0.1/tcp/1/p2p/{PEER}",)).to_link()
    assert parse_invite(link).addrs == ("/ip4/127.0.0.1/tcp/1",)


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("https://example.org", "starts with 'kith:'"),
        ("kith:room?id=x", "not a contact invite"),
        ("kith:contact?name=x", "valid peer id"),
        ("kith:contact?id=12D3KooWnope", "valid peer id"),
        (f"kith:contact?id={PEER}&addr=ip4", "malformed address"),
        ("kith:contact?" + "&".join(f"addr=/a{i}" for i in range(40)), "too many"),
        ("kith:" + "x" * 9000, "too long"),
    ],
)
def test_bad_links_say_what_is_wrong(link: str, words: str) -> None:
    with pytest.raises(InvalidInvite, match=words):
        parse_invite(link)


def test_display_names_are_cleaned() -> None:
    assert clean_display_name("  Ada \t Lovelace\x00 ") == "Ada Lovelace"
    assert clean_display_name("Ada\tLove\x07lace") == "Ada Lovelace"
    assert len(clean_display_name("x" * 500)) == 64
    with pytest.raises(ValueError):
        clean_display_name(" \n\t ")


@given(st.text(max_size=300))
def test_parse_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidInvite):
        parse_invite("kith:contact?" + text)
