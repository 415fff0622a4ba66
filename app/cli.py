"""``kith node``: the same peer without Qt, speaking JSON lines.

One command object per line on standard input, one event object per line on standard output,
logs on standard error. A command is one small async function registered with ``@command``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TextIO

from app.client import KithClient, NodeNotRunning
from app.core.config import ConfigError
from app.core.events import Event, NodeStopped
from app.store.profile import ProfileError

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20  # a command line longer than 1 MiB is refused

Reply = dict[str, Any] | Event | None
CommandFn = Callable[[KithClient, dict[str, Any]], Awaitable[Reply]]
COMMANDS: dict[str, CommandFn] = {}


class CommandError(Exception):
    """A command that cannot be carried out; its message goes back as an error event."""


class Quit(Exception):
    pass


def command(name: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        COMMANDS[name] = fn
        return fn

    return register


def require(args: dict[str, Any], key: str, kind: type = str) -> Any:
    value = args.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CommandError(f"'{key}' must be a {kind.__name__}")
    return value


def page_limit(args: dict[str, Any], default: int = 100) -> int:
    limit = args.get("limit", default)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise CommandError("'limit' must be a number from 1 to 1000")
    return limit


@command("status")
async def _status(client: KithClient, args: dict[str, Any]) -> Reply:
    return await client.status()


@command("mailbox_status")
async def _mailbox_status(client: KithClient, args: dict[str, Any]) -> Reply:
    return await client.mailbox_status()


@command("use_mailbox")
async def _use_mailbox(client: KithClient, args: dict[str, Any]) -> Reply:
    info = await client.use_mailbox(require(args, "peer_id"))
    return {"event": "contact_mailbox", **asdict(info)}


@command("quit")
async def _quit(client: KithClient, args: dict[str, Any]) -> Reply:
    raise Quit


@command("add_contact")
async def _add_contact(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.add_contact(require(args, "invite"))
    return None  # the node announces contact_added


@command("contacts")
async def _contacts(client: KithClient, args: dict[str, Any]) -> Reply:
    return {"event": "contacts", "contacts": [asdict(c) for c in await client.contacts()]}


@command("accept")
async def _accept(client: KithClient, args: dict[str, Any]) -> Reply:
    info = await client.accept_request(require(args, "peer_id"))
    return {"event": "accepted", "peer_id": info.peer_id}


@command("block")
async def _block(client: KithClient, args: dict[str, Any]) -> Reply:
    info = await client.block(require(args, "peer_id"))
    return {"event": "blocked", "peer_id": info.peer_id}


@command("rename")
async def _rename(client: KithClient, args: dict[str, Any]) -> Reply:
    info = await client.rename_contact(require(args, "peer_id"), require(args, "name"))
    return {"event": "renamed", "peer_id": info.peer_id, "name": info.name}


@command("remove_contact")
async def _remove(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.remove_contact(require(args, "peer_id"))
    return None  # the node announces contact_removed


def optional(args: dict[str, Any], key: str, kind: type = str) -> Any:
    """``args[key]`` if given (and not null), checked like ``require``; else None."""
    return None if args.get(key) is None else require(args, key, kind)


@command("send")
async def _send(client: KithClient, args: dict[str, Any]) -> Reply:
    message = await client.send(require(args, "to"), require(args, "text"),
                                optional(args, "reply_to"))
    return {"event": "sent", "id": message.id, "to": message.peer_id}


@command("react")
async def _react(client: KithClient, args: dict[str, Any]) -> Reply:
    remove = optional(args, "remove", bool) or False
    await client.react(require(args, "message_id"), require(args, "emoji"), remove)
    return None  # the node announces reaction


@command("edit")
async def _edit(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.edit(require(args, "message_id"), require(args, "text"))
    return None  # the node announces message_edited


@command("delete")
async def _delete(client: KithClient, args: dict[str, Any]) -> Reply:
    for_everyone = optional(args, "for_everyone", bool) or False
    await client.delete(require(args, "message_id"), for_everyone)
    return None  # the node announces message_deleted


@command("typing")
async def _typing(client: KithClient, args: dict[str, Any]) -> Reply:
    to, room = optional(args, "to"), optional(args, "room")
    if (to is None) == (room is None):
        raise CommandError("give 'to' (a contact) or 'room'")
    if room is not None and not _is_hex(room, 16):
        raise CommandError("'room' must be a room id")
    await client.typing(to, room)
    return None  # nothing to print: the other side gets typing


@command("mark_read")
async def _mark_read(client: KithClient, args: dict[str, Any]) -> Reply:
    sent = await client.mark_message_read(require(args, "message_id"))
    return {"event": "marked_read", "message_id": args["message_id"], "receipt": sent}


@command("set_privacy")
async def _set_privacy(client: KithClient, args: dict[str, Any]) -> Reply:
    settings = await client.set_privacy(read_receipts=optional(args, "read_receipts", bool),
                                        typing=optional(args, "typing", bool))
    return {"event": "privacy", "read_receipts": settings.read_receipts,
            "typing": settings.typing_indicators}


def _is_hex(value: str, size: int) -> bool:
    try:
        return len(bytes.fromhex(value)) == size
    except ValueError:
        return False


def _reactions(reactions: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, list[str]]:
    return {emoji: list(who) for emoji, who in reactions}


@command("retry")
async def _retry(client: KithClient, args: dict[str, Any]) -> Reply:
    message = await client.retry(require(args, "id"))
    return {"event": "retrying", "id": message.id}


@command("history")
async def _history(client: KithClient, args: dict[str, Any]) -> Reply:
    peer_id = require(args, "with")
    limit = page_limit(args)
    before = args.get("before")
    if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
        raise CommandError("'before' must be a message seq number")
    messages = await client.history(peer_id, before, limit)
    return {
        "event": "history",
        "with": peer_id,
        "messages": [
            {
                "id": m.id, "seq": m.seq, "from": client.peer_id if m.outgoing else m.peer_id,
                "text": m.text, "sent_at": m.sent_at_ms, "outgoing": m.outgoing,
                "state": m.state.value, "kind": m.kind, "transfer": m.transfer,
                "reply_to": m.reply_to, "edited": m.edited_at is not None,
                "reactions": _reactions(m.reactions),
            }
            for m in messages
        ],
    }


@command("create_room")
async def _create_room(client: KithClient, args: dict[str, Any]) -> Reply:
    description = args.get("description", "")
    if not isinstance(description, str):
        raise CommandError("'description' must be a str")
    governed = args.get("governed", False)
    if not isinstance(governed, bool):
        raise CommandError('"governed" is true or false')
    await client.create_room(require(args, "name"), description, governed)
    return None  # the node announces room_created


@command("join_room")
async def _join_room(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.join_room(require(args, "invite"))
    return None  # the node announces room_joined


@command("leave_room")
async def _leave_room(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.leave_room(require(args, "room"))
    return None  # the node announces room_left


@command("rooms")
async def _rooms(client: KithClient, args: dict[str, Any]) -> Reply:
    return {"event": "rooms", "rooms": [asdict(r) for r in await client.rooms()]}


@command("post")
async def _post(client: KithClient, args: dict[str, Any]) -> Reply:
    post = await client.post(require(args, "room"), require(args, "text"),
                             optional(args, "reply_to"))
    return {"event": "posted", "id": post.id, "room": post.room_id}


@command("invite_to_room")
async def _invite_to_room(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    peer_ids = args.get("peer_ids")
    if not isinstance(peer_ids, list) or not all(isinstance(p, str) for p in peer_ids):
        raise CommandError("'peer_ids' must be a list of peer ids")
    sent = await client.invite_to_room(room, peer_ids)
    return {"event": "room_invites_sent", "room": room,
            "invites": [{"peer_id": m.peer_id, "id": m.id} for m in sent]}


@command("members")
async def _members(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    members = await client.room_members(room)
    return {"event": "members", "room": room, "members": [asdict(m) for m in members]}


@command("set_role")
async def _set_role(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.set_role(require(args, "room"), require(args, "peer_id"), require(args, "role"))
    return None  # every member announces role_changed


@command("remove_member")
async def _remove_member(client: KithClient, args: dict[str, Any]) -> Reply:
    ban = args.get("ban", False)
    if not isinstance(ban, bool):
        raise CommandError('"ban" is true or false')
    await client.remove_member(require(args, "room"), require(args, "peer_id"), ban)
    return None  # every member announces member_removed, then key_rotated


@command("room_settings")
async def _room_settings(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    changes = {k: v for k, v in args.items() if k not in ("cmd", "room")}
    settings = await client.room_settings(room, changes)
    return {"event": "room_settings", "room": room, "settings": settings}


@command("create_invite")
async def _create_invite(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    expires_in, uses = args.get("expires_in", 0), args.get("uses", 0)
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool):
        raise CommandError('"expires_in" is a number of seconds')
    if not isinstance(uses, int) or isinstance(uses, bool):
        raise CommandError('"uses" is a whole number')
    link, invite_id = await client.create_invite(room, expires_in, uses)
    return {"event": "invite_created", "room": room, "invite": link, "invite_id": invite_id}


@command("invite_contact")
async def _invite_contact(client: KithClient, args: dict[str, Any]) -> Reply:
    room, peer_id = require(args, "room"), require(args, "peer_id")
    message_id = await client.invite_contact(room, peer_id)
    return {"event": "invite_sent", "room": room, "peer_id": peer_id, "id": message_id}


@command("revoke_invite")
async def _revoke_invite(client: KithClient, args: dict[str, Any]) -> Reply:
    room, invite_id = require(args, "room"), require(args, "invite_id")
    await client.revoke_invite(room, invite_id)
    return {"event": "invite_revoked", "room": room, "invite_id": invite_id}


@command("invites")
async def _invites(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    return {"event": "invites", "room": room, "invites": await client.room_invites(room)}


@command("approve_join")
async def _approve_join(client: KithClient, args: dict[str, Any]) -> Reply:
    accept = args.get("accept", True)
    if not isinstance(accept, bool):
        raise CommandError('"accept" is true or false')
    await client.approve_join(require(args, "room"), require(args, "peer_id"), accept)
    return None  # member_joined (or member_removed) follows


@command("delete_post")
async def _delete_post(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.delete_room_post(require(args, "room"), require(args, "id"))
    return None  # every member announces post_removed


@command("room_history")
async def _room_history(client: KithClient, args: dict[str, Any]) -> Reply:
    room = require(args, "room")
    limit = page_limit(args)
    posts = await client.room_history(room, None, limit)
    return {
        "event": "room_history",
        "room": room,
        "posts": [
            {"id": p.id, "from": p.author, "name": p.author_name, "text": p.text,
             "sent_at": p.sent_at_ms, "lamport": p.lamport, "state": p.state.value,
             "kind": p.kind, "transfer": p.transfer, "reply_to": p.reply_to,
             "edited": p.edited_at is not None, "reactions": _reactions(p.reactions)}
            for p in posts
        ],
    }


@command("search")
async def _search(client: KithClient, args: dict[str, Any]) -> Reply:
    text = require(args, "text")
    hits = await client.search(text, page_limit(args, 50))
    return {"event": "search", "text": text, "hits": [asdict(h) for h in hits]}


def optional_str(args: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = args.get(key, default)
    if value is not None and not isinstance(value, str):
        raise CommandError(f"'{key}' must be a str")
    return value


@command("send_file")
async def _send_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.send_file(require(args, "to"), require(args, "path"), optional_str(args, "name"))
    return None  # the node announces file_offered


@command("accept_file")
async def _accept_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.accept_file(require(args, "transfer"), optional_str(args, "dir", "") or "")
    return None  # the node announces file_accepted (file_resumed for a paused transfer)


@command("pause_file")
async def _pause_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.pause_file(require(args, "transfer"))
    return None  # the node announces file_paused


@command("resume_file")
async def _resume_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.resume_file(require(args, "transfer"))
    return None  # the node announces file_resumed


@command("transfer")
async def _transfer(client: KithClient, args: dict[str, Any]) -> Reply:
    transfer = require(args, "transfer")
    info = await client.transfer(transfer)
    return {"event": "transfer", "transfer": transfer,
            "info": asdict(info) if info is not None else None}


@command("file_settings")
async def _file_settings(client: KithClient, args: dict[str, Any]) -> Reply:
    folder, limit = await client.file_settings()
    return {"event": "file_settings", "download_dir": folder, "auto_accept_verified_bytes": limit}


@command("set_file_settings")
async def _set_file_settings(client: KithClient, args: dict[str, Any]) -> Reply:
    current_dir, current_limit = await client.file_settings()
    folder = optional_str(args, "download_dir", current_dir) or ""
    limit = args.get("auto_accept_verified_bytes", current_limit)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise CommandError("'auto_accept_verified_bytes' must be an int")
    folder, limit = await client.set_file_settings(folder, limit)
    return {"event": "file_settings", "download_dir": folder, "auto_accept_verified_bytes": limit}


@command("decline_file")
async def _decline_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.decline_file(require(args, "transfer"))
    return None  # the node announces file_declined


@command("cancel_file")
async def _cancel_file(client: KithClient, args: dict[str, Any]) -> Reply:
    await client.cancel_file(require(args, "transfer"))
    return None  # the node announces file_cancelled


@command("transfers")
async def _transfers(client: KithClient, args: dict[str, Any]) -> Reply:
    return {"event": "transfers", "transfers": [asdict(t) for t in await client.transfers()]}


# Events the GUI needs that would only be noise on the command line.
HIDDEN_EVENTS = {"contact", "queued", "unread", "room", "room_members", "room_post"}


class JsonLines:
    """Writes one JSON object per line, flushed, from the loop thread only."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, obj: dict[str, Any] | Event) -> None:
        data = obj.to_json() if isinstance(obj, Event) else obj
        self._out.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._out.flush()

    def error(self, message: str, **extra: Any) -> None:
        self.write({"event": "error", "message": message, **extra})


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Blocking reads in a thread: portable (Windows has no async stdin) and simple."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, None)


async def handle_line(client: KithClient, line: str, out: JsonLines) -> None:
    """Parse and run one command line; raises ``Quit`` for quit."""
    if len(line) > MAX_LINE:
        out.error("command line too long")
        return
    try:
        request = json.loads(line)
    except ValueError as exc:
        out.error(f"malformed JSON: {exc}")
        return
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        out.error('a command is a JSON object with a "cmd" string')
        return
    name = request["cmd"]
    fn = COMMANDS.get(name)
    if fn is None:
        out.error(f"unknown command {name!r}", cmd=name)
        return
    try:
        reply = await fn(client, request)
    except Quit:
        raise
    except (CommandError, NodeNotRunning, ValueError, OSError) as exc:
        out.error(str(exc), cmd=name)  # OSError includes StorageError (a full disk)
        return
    except Exception as exc:  # one failed command never stops the node
        log.exception("%s failed", name)
        out.error(f"{name} failed: {exc}", cmd=name)
        return
    if reply is not None:
        out.write(reply)


async def serve(client: KithClient, out: JsonLines) -> int:
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()

    def on_event(event: Event) -> None:
        # File offers also appear as conversation messages (kind 2) for the GUI; here
        # file_offer / file_offered say it, so those message events are not printed.
        if event.name not in HIDDEN_EVENTS and getattr(event, "kind", 1) == 1:
            out.write(event)
        if isinstance(event, NodeStopped) and not stopped.done():
            stopped.set_result(None)

    client.subscribe(on_event)
    try:
        await client.start()  # the ready event reaches on_event
    except (ProfileError, ConfigError) as exc:
        out.error(str(exc))
        return 1
    except Exception as exc:
        log.exception("could not start")
        out.error(f"could not start: {exc}")
        return 1
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, queue), daemon=True, name="stdin").start()
    try:
        while True:
            next_line = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({next_line, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                next_line.cancel()
                return 1  # the network died; node_failed was already printed
            line = next_line.result()
            if line is None:
                return 0
            if line.strip():
                await handle_line(client, line, out)
    except Quit:
        return 0
    finally:
        await client.stop()


def run_node(client: KithClient) -> int:
    return asyncio.run(serve(client, JsonLines(sys.stdout)))
