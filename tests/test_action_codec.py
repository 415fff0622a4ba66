"""The message-action bodies (docs/protocol.md 11): any text decodes or fails with
``ActionError``, what is encoded decodes to itself, and hostile bodies are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import actions as ac
from app.core import room as rc
from app.core.identity import Identity

TARGET = "0f" * 16
KINDS = sorted(ac.DM_ACTION_KINDS)


@given(st.sampled_from(KINDS), st.text(max_size=200))
def test_any_body_decodes_or_is_refused_plainly(kind: int, body: str) -> None:
    try:
        action = ac.decode_action(kind, body)
    except ac.ActionError:
        return
    assert action.kind == kind and len(action.target) == ac.TARGET_HEX


SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # with tags
emoji = st.sampled_from(["👍", "❤️", "👨‍👩‍👧‍👦", SCOTLAND, "🇫🇷", "x", "✓"])


@given(st.sampled_from([ac.KIND_REPLY, ac.KIND_EDIT]), st.text(min_size=1, max_size=300))
def test_texts_round_trip(kind: int, text: str) -> None:
    try:
        body = ac.encode_action(ac.Action(kind, TARGET, text))
    except (ac.ActionError, UnicodeEncodeError):
        return  # lone surrogates cannot be sent
    assert ac.decode_action(kind, body) == ac.Action(kind, TARGET, text)


@given(emoji, st.booleans())
def test_reactions_round_trip(chosen: str, remove: bool) -> None:
    action = ac.Action(ac.KIND_REACTION, TARGET, chosen, remove=remove)
    assert ac.decode_action(ac.KIND_REACTION, ac.encode_action(action)) == action


@pytest.mark.parametrize("body", [
    "", TARGET, TARGET + "+", TARGET + "*👍", TARGET + "+ ", TARGET + "+\u200b",
    TARGET + "+" + "👍" * 9, TARGET.upper() + "+👍", "zz" * 16 + "+👍", TARGET[:-1] + "+👍",
])
def test_hostile_reactions_are_refused(body: str) -> None:
    with pytest.raises(ac.ActionError):
        ac.decode_action(ac.KIND_REACTION, body)


def test_a_delete_or_receipt_holds_the_id_alone_and_texts_have_limits() -> None:
    with pytest.raises(ac.ActionError):
        ac.decode_action(ac.KIND_DELETE, TARGET + "x")
    with pytest.raises(ac.ActionError):
        ac.decode_action(ac.KIND_EDIT, TARGET)  # an empty new text
    with pytest.raises(ac.ActionError):
        ac.decode_action(ac.KIND_REPLY, TARGET + "x" * (ac.MAX_TEXT_BYTES + 1))
    assert ac.decode_action(ac.KIND_READ, TARGET) == ac.Action(ac.KIND_READ, TARGET)


def test_a_malformed_action_post_is_dropped_by_the_room_codec() -> None:
    author, secrets = Identity(b"\x07" * 32), rc.RoomSecrets.generate()
    inner = rc.encode_inner(author, secrets.room_id, (TARGET + "*👍").encode(),
                            kind=ac.KIND_REACTION, post_id=b"\x01" * 16, lamport=1,
                            author_seq=1, sent_at_ms=1)
    with pytest.raises(rc.MalformedPost):
        rc.decode_post(secrets, rc.seal_inner(secrets, inner))
    with pytest.raises(rc.MalformedPost):
        rc.encode_post(author, secrets, kind=ac.KIND_EDIT, body=TARGET.encode(), lamport=1,
                       author_seq=1, sent_at_ms=1)


def test_features_are_bounded() -> None:
    assert ac.clean_features(["actions/1", 3, "", "x" * 33, "bad\n", "typing/1"]) == {
        "actions/1", "typing/1"}
    assert ac.clean_features("actions/1") == frozenset()
    assert len(ac.clean_features([f"f{i}" for i in range(100)])) == ac.MAX_FEATURES
