"""A believable scene for screenshots: two friends, a conversation and a room, all real.

Used by ``python -m ui.shell.screenshot --scene conversation``. The friends are real Kith peers in
this process, on their own throw-away profiles, listening on 127.0.0.1 only; everything the
window shows went over the network like any other message: Markdown and emoji, a picture Bob
accepted, a room with unread posts, Bob pinned and a draft waiting for Cleo.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter

from app.client import KithClient
from app.core.config import NodeConfig
from app.core.events import (
    ContactChanged,
    ContactOnline,
    Event,
    FileComplete,
    FileOffer,
    MessageReceived,
    ReactionChanged,
    RoomChanged,
    RoomMessage,
)
from app.store.profile import Profile
from ui.shell.app import KithApp
from ui.waits import wait_until

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
SCENE_TIMEOUT = 30.0

CONVERSATION = [
    ("friend", "Hi Ada! Did the photos from Saturday come through? 📸"),
    ("me", "They did, the one at the **lighthouse** is lovely 🌅"),
    ("picture", "lighthouse.png"),
    ("friend", "I'll share the whole album in the *book club* room tonight."),
    ("me", "Perfect. See you on Thursday then!"),
]
EDITED = "Perfect. See you on Thursday at seven!"
REPLY = "Seven it is 🎉"
DRAFT = "Shall we bring the _map_ on Sunday?"
ROOM_POSTS = [
    ("other", "Next up: The Left Hand of Darkness. Everyone in?"),
    ("friend", "Yes! Halfway through already."),
]


async def _friend(root: Path, name: str, profiles: list[Profile]) -> tuple[KithClient, list[Event]]:
    profile = Profile.open(root / name.lower())
    profiles.append(profile)
    profile.initialise(name)
    client = KithClient(profile, NodeConfig(listen=(LOOPBACK,)))
    events: list[Event] = []
    client.subscribe(events.append)
    await client.start()
    return client, events


async def _react_reply_edit(kith: KithApp, bob: KithClient, ids: dict[str, str],
                            my_events: list[Event]) -> None:
    """Bob hearts a message and answers another; Ada thumbs his and corrects hers."""
    assert kith.client is not None and kith.state is not None
    me = kith.client
    await bob.react(ids[CONVERSATION[1][1]], "❤️")
    await me.react(ids[CONVERSATION[3][1]], "👍")
    await me.edit(ids[CONVERSATION[4][1]], EDITED)
    await bob.send(kith.state.peer_id, REPLY, reply_to=ids[CONVERSATION[4][1]])
    await wait_until(lambda: any(isinstance(e, MessageReceived) and e.text == REPLY
                                 for e in my_events), SCENE_TIMEOUT, "Bob's reply")
    await wait_until(lambda: any(isinstance(e, ReactionChanged) and e.emoji == "❤️"
                                 for e in my_events), SCENE_TIMEOUT, "Bob's heart")


def _paint_picture(path: Path) -> Path:
    """A small seaside picture: sky, sea, sun and a lighthouse, drawn here."""
    image = QImage(960, 640, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    sky = QLinearGradient(0, 0, 0, 420)
    sky.setColorAt(0, QColor("#f6b26b"))
    sky.setColorAt(1, QColor("#ffe5b4"))
    painter.fillRect(0, 0, 960, 420, sky)
    painter.fillRect(0, 420, 960, 220, QColor("#2d6a8a"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#fff3d6"))
    painter.drawEllipse(QPointF(700, 330), 70, 70)
    painter.setBrush(QColor("#f4f1ea"))
    painter.drawPolygon([QPointF(230, 430), QPointF(250, 190), QPointF(290, 190),
                         QPointF(310, 430)])
    painter.setBrush(QColor("#c0392b"))
    for top in (230, 310, 390):
        painter.drawRect(QRectF(240, top, 60, 22))
    painter.drawRect(QRectF(244, 160, 52, 30))
    painter.end()
    image.save(str(path))
    return path


async def stage_conversation(kith: KithApp) -> Callable[[], Awaitable[None]]:
    """Populate the window; returns the coroutine function that tears the scene down."""
    assert kith.client is not None and kith.window is not None and kith.state is not None
    me, window = kith.client, kith.window
    root = Path(tempfile.mkdtemp(prefix="kith-scene-"))
    friends: list[KithClient] = []
    profiles: list[Profile] = []

    async def teardown() -> None:
        for client in friends:
            await client.stop()
        for profile in profiles:
            profile.close()
        shutil.rmtree(root, ignore_errors=True)

    my_events: list[Event] = []
    me.subscribe(my_events.append)
    bob, bob_events = await _friend(root, "Bob", profiles)
    friends.append(bob)
    cleo, _ = await _friend(root, "Cleo", profiles)
    friends.append(cleo)
    for friend in (bob, cleo):
        assert friend.ready is not None
        await me.add_contact(friend.ready.invite)
        await friend.add_contact(kith.state.invite)
    await wait_until(lambda: any(isinstance(e, ContactOnline) for e in bob_events),
                     SCENE_TIMEOUT, "Bob online")

    def arrived(events: list[Event], text: str) -> Callable[[], bool]:
        return lambda: any(isinstance(e, MessageReceived) and e.text == text for e in events)

    await bob.set_file_settings(str(root / "bob-downloads"), 0)
    ids: dict[str, str] = {}
    for who, text in CONVERSATION:  # one at a time, so both sides see the same order
        if who == "picture":
            sent = await me.send_file(bob.peer_id, str(_paint_picture(root / text)))
            await wait_until(lambda: any(isinstance(e, FileOffer) for e in bob_events),
                             SCENE_TIMEOUT, "Bob to be offered the picture")
            await bob.accept_file(sent.transfer)
            await wait_until(lambda t=sent.transfer: any(  # type: ignore[misc]
                isinstance(e, FileComplete) and e.transfer == t for e in my_events),
                SCENE_TIMEOUT, "the picture to arrive")
        elif who == "me":
            ids[text] = (await me.send(bob.peer_id, text)).id
            await wait_until(arrived(bob_events, text), SCENE_TIMEOUT, "Bob to get it")
        else:
            ids[text] = (await bob.send(kith.state.peer_id, text)).id
            await wait_until(arrived(my_events, text), SCENE_TIMEOUT, "Ada to get it")
    await _react_reply_edit(kith, bob, ids, my_events)
    room = await me.create_room("Book club", "Monthly reads")
    await bob.join_room(room.invite)
    await cleo.join_room(room.invite)
    for who, text in ROOM_POSTS:
        await (cleo if who == "other" else bob).post(room.room_id, text)
    await wait_until(lambda: sum(isinstance(e, RoomMessage) for e in my_events) >= len(ROOM_POSTS),
                     SCENE_TIMEOUT, "the room posts")
    await wait_until(
        lambda: any(isinstance(e, RoomChanged) and e.room.unread >= len(ROOM_POSTS)
                    and e.room.members == 3 for e in my_events),
        SCENE_TIMEOUT, "the room's entry to show its members and unread posts",
    )
    await me.set_chat_prefs(bob.peer_id, pinned=True)
    await me.set_draft(cleo.peer_id, DRAFT)
    window.sidebar.model.set_draft(cleo.peer_id, DRAFT)  # the window learns of drafts it saves
    await wait_until(lambda: window.sidebar.model.prefs(bob.peer_id).pinned, SCENE_TIMEOUT,
                     "Bob pinned")
    window.open_peer(bob.peer_id)
    await wait_until(
        lambda: len(window.conversation.model.items()) >= len(CONVERSATION),
        SCENE_TIMEOUT, "the conversation on screen",
    )
    cards = window.conversation.messages.delegate.cards
    await wait_until(lambda: any(
        not cards.picture_rect(window.conversation.model.index(row)).isEmpty()
        for row in range(window.conversation.model.rowCount())),
        SCENE_TIMEOUT, "the picture's preview")
    # A virtual screen has no window manager to make the window active: read it explicitly.
    await me.mark_read(bob.peer_id)
    await wait_until(
        lambda: any(isinstance(e, ContactChanged) and e.contact.peer_id == bob.peer_id
                    and e.contact.unread == 0 for e in my_events),
        SCENE_TIMEOUT, "Bob's conversation to count as read",
    )
    return teardown
