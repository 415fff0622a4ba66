"""A governed room's notices in the conversation: "Bob joined", "Cy was removed by Ada".

The node hands the membership log's entries that changed who is in (admissions, roles,
removals and bans, leaves) and admins' deletions to the conversation as room posts of kind
32 whose text is a small JSON object (docs/cli.md, ``room_history``). They are rows like any
post, in the room's order, and painted as one centred line (``MessageDelegate``).
"""

from __future__ import annotations

import json

from PySide6.QtCore import QCoreApplication

from app.core.records import RoomPostInfo, short_peer_id

KIND_NOTICE = 32
_ROLES = {"owner": "an owner", "admin": "an admin", "member": "a member",
          "observer": "an observer"}


def _tr(text: str) -> str:
    return QCoreApplication.translate("Notice", text)


def is_notice(info: RoomPostInfo) -> bool:
    return info.kind == KIND_NOTICE


def notice_text(info: RoomPostInfo, me: str) -> str:
    """The notice in words ("" if it cannot be read); ``me`` is our peer id."""
    try:
        notice = json.loads(info.text)
    except ValueError:
        return ""
    if not isinstance(notice, dict):
        return ""
    op, peer = notice.get("op"), notice.get("peer")
    actor = _tr("You") if info.author == me else info.author_name
    if not isinstance(peer, str):
        peer = ""
    you = peer == me
    name = _tr("You") if you else (str(notice.get("name") or "") or short_peer_id(peer))
    by_me = info.author == me
    if op == "admit":
        return _tr("You joined") if you else _tr("{name} joined").format(name=name)
    if by_me and op in ("role", "remove"):
        if op == "role":
            role = _tr(_ROLES.get(str(notice.get("role")), "a member"))
            return _tr("You made {name} {role}").format(name=name, role=role)
        return (_tr("You banned {name}") if notice.get("ban") is True
                else _tr("You removed {name}")).format(name=name)
    if op == "role":
        role = _tr(_ROLES.get(str(notice.get("role")), "a member"))
        if you:
            return _tr("{actor} made you {role}").format(actor=actor, role=role)
        return _tr("{actor} made {name} {role}").format(actor=actor, name=name, role=role)
    if op == "remove":
        if notice.get("ban") is True:
            return (_tr("You were banned by {actor}") if you
                    else _tr("{name} was banned by {actor}")).format(name=name, actor=actor)
        return (_tr("You were removed by {actor}") if you
                else _tr("{name} was removed by {actor}")).format(name=name, actor=actor)
    if op == "leave":
        return _tr("{actor} left").format(actor=actor)
    if op == "delete":
        return _tr("{actor} deleted a post").format(actor=actor)
    return ""
