"""A room post is opened and verified once for validator and reader
(app.node.rooms.verified_posts)."""

from __future__ import annotations

import pytest

from app.core import room as rc
from app.core.identity import Identity
from app.node.rooms.verified_posts import VerifiedPosts

AUTHOR = Identity.generate()
SECRETS = rc.RoomSecrets.generate()


def envelope(seq: int, secrets: rc.RoomSecrets = SECRETS, text: str = "hello") -> bytes:
    return rc.encode_text_post(AUTHOR, secrets, f"{text} {seq}", lamport=seq, author_seq=seq,
                               sent_at_ms=1)


def test_the_reader_takes_the_post_the_validator_verified_and_who_relayed_it() -> None:
    posts = VerifiedPosts()
    data = envelope(1)
    verified = posts.verify(SECRETS, data, "relay")
    post, relayed_by = posts.take(SECRETS, data)
    assert post is verified and relayed_by == "relay"  # not opened a second time
    assert len(posts) == 0
    again, unknown = posts.take(SECRETS, data)  # taken once; another take opens it again
    assert again == verified and again is not verified and unknown == ""


def test_a_post_is_reused_only_for_the_same_bytes_and_the_same_room_secrets() -> None:
    posts = VerifiedPosts()
    data = envelope(1)
    posts.verify(SECRETS, data, "relay")
    other_key = rc.RoomSecrets(SECRETS.room_id, rc.RoomSecrets.generate().key)
    with pytest.raises(rc.WrongRoomKey):
        posts.take(other_key, data)
    altered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(rc.WrongRoomKey):
        posts.take(SECRETS, altered)
    assert posts.take(SECRETS, data)[0].text == "hello 1"


def test_a_refused_post_is_not_kept() -> None:
    posts = VerifiedPosts()
    with pytest.raises(rc.RoomError):
        posts.verify(SECRETS, envelope(1, rc.RoomSecrets.generate()), "relay")
    assert len(posts) == 0


def test_what_is_kept_is_bounded_by_count_and_by_bytes() -> None:
    posts = VerifiedPosts(max_kept=3, max_bytes=10**6)
    data = [envelope(seq) for seq in range(1, 6)]
    kept = [posts.verify(SECRETS, d, "relay") for d in data]
    assert len(posts) == 3
    assert posts.take(SECRETS, data[0]) == (kept[0], "")  # the oldest went first: opened again
    assert posts.take(SECRETS, data[0])[0] is not kept[0]
    assert posts.take(SECRETS, data[4])[0] is kept[4]

    big = [envelope(seq, text="x" * 3000) for seq in range(1, 5)]
    posts = VerifiedPosts(max_kept=100, max_bytes=2 * len(big[0]))
    for one in big:
        posts.verify(SECRETS, one, "relay")
    assert len(posts) == 2
