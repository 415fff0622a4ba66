"""A believable scene for screenshots: two friends, a conversation and a room, all real.

Used by ``python -m ui.shell.screenshot --scene conversation``. The friends are real Kith peers in
this process, on their own throw-away profiles, listening on 127.0.0.1 only; everything the
window shows went over the network like any other message.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.client import KithClient
from app.core.config import NodeConfig
from app.core.events import (
    ContactChanged,
    ContactOnline,
    Event,
    MessageReceived,
    RoomChanged,
    RoomMessage,
)
from app.store.profile import Profile
from ui.shell.app import KithApp
from ui.waits import wait_until

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
SCENE_TIMEOUT = 30.0

CONVERSATION = [
    ("friend", "Hi Ada! Did the photos from Saturday come through?"),
    ("me", "They did, the one at the lighthouse is lovely."),
    ("friend", "I'll share the whole album in the book club room tonight."),
    ("me", "Perfect. See you on Thursday then!"),
]
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

    for who, text in CONVERSATION:  # one at a time, so both sides see the same order
        if who == "me":
            await me.send(bob.peer_id, text)
            await wait_until(arrived(bob_events, text), SCENE_TIMEOUT, "Bob to get it")
        else:
            await bob.send(kith.state.peer_id, text)
            await wait_until(arrived(my_events, text), SCENE_TIMEOUT, "Ada to get it")
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
    contact = await me.contact(bob.peer_id)
    assert contact is not None
    window.conversation.open_contact(contact)
    await wait_until(
        lambda: len(window.conversation.model.items()) >= len(CONVERSATION),
        SCENE_TIMEOUT, "the conversation on screen",
    )
    # A virtual screen has no window manager to make the window active: read it explicitly.
    await me.mark_read(bob.peer_id)
    await wait_until(
        lambda: any(isinstance(e, ContactChanged) and e.contact.peer_id == bob.peer_id
                    and e.contact.unread == 0 for e in my_events),
        SCENE_TIMEOUT, "Bob's conversation to count as read",
    )
    return teardown
