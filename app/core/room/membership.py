"""A governed room's membership log: who is in, with which role, and which key epoch is current.

The log is a sequence of signed room posts of kind ``KIND_MEMBERSHIP`` (docs/protocol.md,
section 8.12). Every member replays the whole log from its genesis, in the room's shared order
(lamport, author key, post id), and judges each entry by the state the entries before it left:
an entry its author had no right to make is void. Members holding the same entries therefore
hold the same state, whatever order the entries reached them in.

The genesis entry proves the creator: a governed room's id is the first 16 bytes of
SHA-256(``GENESIS_CONTEXT`` || creator public key || nonce), and only the genesis signed by
that key with that nonce counts. A room whose log has no valid genesis is ungoverned (rooms
made before roles existed): everyone holding its key is a member, nobody can remove anyone.

Key epochs: content posts of a governed room are sealed with an epoch key, never with the
link key (which only opens the log and announces). Each epoch key is delivered sealed to each
member's identity key (libsodium sealed boxes to the X25519 form of the Ed25519 key); its id is
the first 16 bytes of SHA-256(``EPOCH_CONTEXT`` || key), so a delivered key proves itself.

This module is pure: it parses entries, replays them, and seals and opens keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from app.core.identity import (
    Identity,
    is_valid_peer_id,
    peer_id_from_public_key,
    public_key_from_peer_id,
    x25519_public_from_peer_id,
)

GENESIS_CONTEXT = b"kith-room-genesis-v1"
EPOCH_CONTEXT = b"kith-room-epoch-v1"
INVITE_CONTEXT = b"kith-room-invite-v1\x00"
NONCE_BYTES = 16
EPOCH_ID_SIZE = 16
EPOCH_KEY_SIZE = 32
SEALED_KEY_SIZE = EPOCH_KEY_SIZE + nacl.bindings.crypto_box_SEALBYTES  # 80

MAX_ENTRY_BYTES = 48 * 1024      # the JSON body of one log entry
MAX_MEMBERS = 250                # members a governed room holds (a rotation's key list)
MAX_LOG_ENTRIES = 20_000         # entries replayed per room; later ones are void
MAX_INVITES = 256                # invites a room holds at once
MAX_JOINING = 256                # people asking to join at once; later joins are void
MAX_OUTSIDER_ENTRIES = 1000      # entries kept from people who are not members or joining
MAX_INVITE_USES = 10_000
MAX_FENCE_ROUNDS = 4             # replays to settle fences (see ``replay``)


class Role(StrEnum):
    """What a member may do, from most to least."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    OBSERVER = "observer"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.OWNER: 3, Role.ADMIN: 2, Role.MEMBER: 1, Role.OBSERVER: 0}


class Status(StrEnum):
    """Where a peer stands with the room."""

    MEMBER = "member"        # admitted; holds a role
    JOINING = "joining"      # asked to join; waits for a member (or, "approve", an admin)
    REMOVED = "removed"      # removed by an admin; may join again through a valid invite
    BANNED = "banned"        # removed, and every later join is void
    LEFT = "left"            # left by itself


class JoinMode(StrEnum):
    OPEN = "open"            # the room link is enough (any member admits)
    INVITE = "invite"        # a join needs a live invite token (any member admits)
    APPROVE = "approve"      # an admin accepts each join


OPS = frozenset({"genesis", "join", "admit", "role", "remove", "leave", "rotate", "keys",
                 "settings", "invite", "revoke_invite", "delete"})


class BadEntry(ValueError):
    """A log entry that does not parse; dropped alone."""


@dataclass(frozen=True)
class Settings:
    join: JoinMode = JoinMode.OPEN
    history: bool = True           # newcomers get the keys of earlier epochs
    rotate_on_leave: bool = True
    name: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"join": self.join.value, "history": self.history,
                "rotate_on_leave": self.rotate_on_leave, "name": self.name,
                "description": self.description}


@dataclass(frozen=True)
class Entry:
    """One signed log entry, as the room's post carried it."""

    author: str
    lamport: int
    author_key: bytes
    post_id: bytes
    author_seq: int
    sent_at_ms: int
    body: dict[str, Any]
    digest: bytes = b""  # SHA-256 of the body as signed

    @property
    def op(self) -> str:
        return str(self.body.get("op", ""))

    @property
    def order_key(self) -> tuple[int, bytes, bytes]:
        return (self.lamport, self.author_key, self.post_id)


@dataclass(frozen=True)
class Invite:
    invite_key: str                  # hex of the invite's Ed25519 public key (its id)
    expires_ms: int                  # 0: never
    uses: int                        # 0: unlimited
    used: int = 0
    revoked: bool = False
    by: str = ""


@dataclass(frozen=True)
class Epoch:
    """A key epoch: its id, who opened it, and the members its key was delivered to."""

    epoch_id: bytes
    opened_by: str
    order: int                       # position among the room's epochs, from 1


@dataclass
class RoomState:
    """What replaying a room's log gives (``replay``)."""

    governed: bool = False
    owner_key: bytes = b""
    roles: dict[str, Role] = field(default_factory=dict)
    status: dict[str, Status] = field(default_factory=dict)
    changed_by: dict[str, str] = field(default_factory=dict)  # who last changed a peer
    joined_seq: dict[str, int] = field(default_factory=dict)  # author_seq of a peer's join
    joined_with: dict[str, str] = field(default_factory=dict)  # the invite a join used
    settings: Settings = field(default_factory=Settings)
    settings_by: str = ""
    epochs: list[Epoch] = field(default_factory=list)
    holders: dict[bytes, set[str]] = field(default_factory=dict)   # epoch id -> delivered to
    sealed: dict[bytes, dict[str, bytes]] = field(default_factory=dict)  # epoch -> peer -> box
    invites: dict[str, Invite] = field(default_factory=dict)
    fences: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    deleted: set[tuple[str, bytes]] = field(default_factory=set)  # (author, post id)
    applied: list[Entry] = field(default_factory=list)     # valid entries, in order

    def role(self, peer_id: str) -> Role | None:
        if self.status.get(peer_id) is not Status.MEMBER:
            return None
        return self.roles.get(peer_id)

    def members(self) -> list[str]:
        return sorted(p for p, s in self.status.items() if s is Status.MEMBER)

    @property
    def current_epoch(self) -> Epoch | None:
        return self.epochs[-1] if self.epochs else None

    def voided(self, author: str, author_seq: int) -> bool:
        """A post numbered ``author_seq`` by ``author`` falls in one of its fences: posted
        after its removal (or leave) and before it joined again."""
        return any(lo < author_seq < hi for lo, hi in self.fences.get(author, ()))

    def tainted(self) -> bool:
        """The current epoch's key was delivered to someone removed (or, with the setting
        ``rotate_on_leave``, someone who left): it is time for a new epoch."""
        epoch = self.current_epoch
        if epoch is None:
            return False
        out = {Status.REMOVED, Status.BANNED}
        if self.settings.rotate_on_leave:
            out.add(Status.LEFT)
        return any(self.status.get(p) in out for p in self.holders.get(epoch.epoch_id, ()))

    def missing_key(self) -> list[str]:
        """Members the current epoch's key was not delivered to yet."""
        epoch = self.current_epoch
        if epoch is None:
            return []
        held = self.holders.get(epoch.epoch_id, set())
        return [p for p in self.members() if p not in held]


# -- ids, keys and invites ---------------------------------------------------------------------


def genesis_room_id(creator_key: bytes, nonce: bytes) -> bytes:
    return hashlib.sha256(GENESIS_CONTEXT + creator_key + nonce).digest()[:16]


def new_genesis(identity: Identity) -> tuple[bytes, bytes]:
    """(room id, nonce) for a room ``identity`` creates."""
    nonce = os.urandom(NONCE_BYTES)
    return genesis_room_id(identity.public_key, nonce), nonce


def epoch_id(key: bytes) -> bytes:
    return hashlib.sha256(EPOCH_CONTEXT + key).digest()[:EPOCH_ID_SIZE]


def new_epoch_key() -> bytes:
    return os.urandom(EPOCH_KEY_SIZE)


def seal_key(key: bytes, peer_id: str) -> bytes:
    """``key`` sealed to ``peer_id``'s identity: only that peer opens it."""
    box = nacl.public.SealedBox(nacl.public.PublicKey(x25519_public_from_peer_id(peer_id)))
    return bytes(box.encrypt(key))


def open_key(sealed: bytes, identity: Identity, expected: bytes) -> bytes | None:
    """The epoch key sealed to us, if it opens and its id is ``expected``."""
    private = nacl.public.PrivateKey(identity.x25519_private)
    try:
        key = nacl.public.SealedBox(private).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        return None
    return key if len(key) == EPOCH_KEY_SIZE and epoch_id(key) == expected else None


def invite_proof(invite_seed: bytes, room_id: bytes, joiner: str) -> tuple[str, str]:
    """(invite key hex, signature hex) a joiner puts in its join entry: the invite's key signs
    the room id and the joiner, so a proof seen in the log cannot admit anyone else."""
    signing = nacl.signing.SigningKey(invite_seed)
    message = INVITE_CONTEXT + room_id + public_key_from_peer_id(joiner)
    return bytes(signing.verify_key).hex(), signing.sign(message).signature.hex()


def _check_proof(invite_key_hex: str, signature_hex: str, room_id: bytes, joiner: str) -> bool:
    try:
        key = nacl.signing.VerifyKey(bytes.fromhex(invite_key_hex))
        key.verify(INVITE_CONTEXT + room_id + public_key_from_peer_id(joiner),
                   bytes.fromhex(signature_hex))
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        return False
    return True


def keys_field(key: bytes, peers: Iterable[str]) -> list[list[str]]:
    """A rotation's or delivery's key list: [peer id, base64 sealed key] per peer."""
    return [[p, base64.b64encode(seal_key(key, p)).decode("ascii")] for p in sorted(peers)]


# -- parsing -------------------------------------------------------------------------------------


def parse_body(body: bytes) -> dict[str, Any]:
    """A log entry's JSON object (``BadEntry`` if not one, too large or of no known op)."""
    if len(body) > MAX_ENTRY_BYTES:
        raise BadEntry("the membership entry is too large")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadEntry("the membership entry is not JSON") from None
    if not isinstance(value, dict) or value.get("op") not in OPS:
        raise BadEntry("the membership entry has no known op")
    return value


def encode_body(body: Mapping[str, Any]) -> bytes:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")
    if len(data) > MAX_ENTRY_BYTES:
        raise BadEntry("the membership entry is too large")
    return data


def _peer(body: Mapping[str, Any], name: str = "peer") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not is_valid_peer_id(value):
        raise BadEntry(f"the entry's {name} is not a peer id")
    return value


def _int(body: Mapping[str, Any], name: str, hi: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise BadEntry(f"the entry's {name} is not a number from 0 to {hi}")
    return value


def _hex(body: Mapping[str, Any], name: str, size: int) -> bytes:
    value = body.get(name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise BadEntry(f"the entry's {name} is not {size} bytes of hex")
    return raw


def _keys(body: Mapping[str, Any]) -> dict[str, bytes]:
    """The entry's key list, peer id -> sealed key."""
    value = body.get("keys", [])
    if not isinstance(value, list) or len(value) > MAX_MEMBERS:
        raise BadEntry(f"the entry's keys are not a list of at most {MAX_MEMBERS}")
    out: dict[str, bytes] = {}
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], str) or not is_valid_peer_id(item[0])):
            raise BadEntry("a key in the entry is malformed")
        try:
            sealed = base64.b64decode(item[1], validate=True)
        except (binascii.Error, ValueError):
            raise BadEntry("a key in the entry is not base64") from None
        if len(sealed) != SEALED_KEY_SIZE:
            raise BadEntry("a sealed key is not 80 bytes")
        out[item[0]] = sealed
    return out


def _role(body: Mapping[str, Any]) -> Role:
    try:
        return Role(str(body.get("role")))
    except ValueError:
        raise BadEntry("the entry's role is not owner, admin, member or observer") from None


# -- replay ------------------------------------------------------------------------------------


def replay(room_id: bytes, entries: Iterable[Entry]) -> RoomState:
    """The room's state from its log. Entries are sorted into the room's order and applied one
    by one; an entry that is malformed, or that its author had no right to make in the state
    before it, is void. Entries by a peer numbered after its removal or leave (fences) are void
    wherever their lamport puts them, so a removed admin cannot act by backdating: fences
    found by one replay are applied from the start of the next, until they settle (at most
    ``MAX_FENCE_ROUNDS`` replays)."""
    ordered = sorted(entries, key=lambda e: e.order_key)[:MAX_LOG_ENTRIES]
    fences: dict[str, tuple[tuple[int, int], ...]] = {}
    state = RoomState()
    for _ in range(MAX_FENCE_ROUNDS):
        state = _replay_once(room_id, ordered, fences)
        if state.fences == fences:
            break
        fences = state.fences
    return state


def _replay_once(room_id: bytes, ordered: list[Entry],
                 fences: Mapping[str, tuple[tuple[int, int], ...]]) -> RoomState:
    state = RoomState()
    open_fences: dict[str, int] = {}
    closed: dict[str, list[tuple[int, int]]] = {}
    for entry in ordered:
        if any(lo < entry.author_seq < hi for lo, hi in fences.get(entry.author, ())):
            continue
        try:
            applied = _apply(room_id, state, entry, open_fences, closed)
        except BadEntry:
            continue
        if applied:
            state.applied.append(entry)
    for peer, lo in open_fences.items():
        closed.setdefault(peer, []).append((lo, 2**63))
    state.fences = {p: tuple(sorted(v)) for p, v in closed.items()}
    return state


def _apply(room_id: bytes, state: RoomState, entry: Entry, open_fences: dict[str, int],
           closed: dict[str, list[tuple[int, int]]]) -> bool:
    """Apply one entry if its author may; True if it counted."""
    body, author, op = entry.body, entry.author, entry.op
    if op == "genesis":
        if state.governed:
            return False
        nonce = _hex(body, "nonce", NONCE_BYTES)
        if genesis_room_id(entry.author_key, nonce) != room_id:
            return False
        state.governed = True
        state.owner_key = entry.author_key
        state.status[author] = Status.MEMBER
        state.roles[author] = Role.OWNER
        state.joined_seq[author] = entry.author_seq
        state.settings = _settings(body.get("settings", {}), Settings())
        return _open_epoch(state, entry, {author})
    if not state.governed:
        return False
    role = state.role(author)
    if op == "join":
        if state.status.get(author) in (Status.MEMBER, Status.JOINING, Status.BANNED):
            return False
        if sum(1 for s in state.status.values() if s is Status.MEMBER) >= MAX_MEMBERS:
            return False
        if sum(1 for s in state.status.values() if s is Status.JOINING) >= MAX_JOINING:
            return False
        invite = body.get("invite")
        if invite is not None:
            if not isinstance(invite, str) or invite not in state.invites:
                return False
            held = state.invites[invite]
            if held.revoked or (held.uses and held.used >= held.uses):
                return False
            if held.expires_ms and entry.sent_at_ms > held.expires_ms:
                return False
            if not _check_proof(invite, str(body.get("sig", "")), room_id, author):
                return False
            state.invites[invite] = replace(held, used=held.used + 1)
            state.joined_with[author] = invite
        elif state.settings.join is JoinMode.INVITE:
            return False
        state.status[author] = Status.JOINING
        state.roles[author] = Role.MEMBER
        state.joined_seq[author] = entry.author_seq
        if author in open_fences:
            closed.setdefault(author, []).append((open_fences.pop(author), entry.author_seq))
        return True
    if op == "leave":
        if state.status.get(author) not in (Status.MEMBER, Status.JOINING):
            return False
        if role is Role.OWNER and _owners(state) == [author]:
            return False  # the last owner hands the room over first
        state.status[author] = Status.LEFT
        state.changed_by[author] = author
        open_fences[author] = entry.author_seq
        return True
    if role is None:
        return False
    if op == "keys":
        target = _hex(body, "epoch", EPOCH_ID_SIZE)
        if target not in state.holders:
            return False
        for peer, sealed in _keys(body).items():
            if state.status.get(peer) is Status.MEMBER:
                state.holders[target].add(peer)
                state.sealed[target].setdefault(peer, sealed)
        return True
    if op == "admit":
        peer = _peer(body)
        if state.status.get(peer) is not Status.JOINING:
            return False
        needed = Role.ADMIN if state.settings.join is JoinMode.APPROVE else Role.MEMBER
        if role.rank < needed.rank:
            return False
        used = state.invites.get(state.joined_with.get(peer, ""))
        if used is not None and used.expires_ms and entry.sent_at_ms > used.expires_ms:
            return False  # the joiner's clock is its own word; the admitter's is a member's
        if used is None and state.settings.join is JoinMode.INVITE:
            return False  # a join without an invite, dated before the room wanted one
        state.status[peer] = Status.MEMBER
        state.changed_by[peer] = author
        deliveries = body.get("epochs", [])
        if not isinstance(deliveries, list) or len(deliveries) > 1024:
            raise BadEntry("the admit's epochs are malformed")
        for item in deliveries:
            if not isinstance(item, list) or len(item) != 2:
                raise BadEntry("the admit's epochs are malformed")
            target = _hex({"e": item[0]}, "e", EPOCH_ID_SIZE)
            sealed = _keys({"keys": [[peer, item[1]]]})[peer]
            if target in state.holders:
                state.holders[target].add(peer)
                state.sealed[target].setdefault(peer, sealed)
        return True
    if role.rank < Role.ADMIN.rank:
        return False
    if op == "role":
        peer, new = _peer(body), _role(body)
        old = state.role(peer)
        if old is None:
            return False
        if role is not Role.OWNER and (old is Role.OWNER or new is Role.OWNER):
            return False  # only owners make or unmake owners
        if old is Role.OWNER and new is not Role.OWNER and _owners(state) == [peer]:
            return False  # a room keeps an owner
        state.roles[peer] = new
        state.changed_by[peer] = author
        return True
    if op == "remove":
        peer = _peer(body)
        ban = body.get("ban") is True
        current = state.status.get(peer)
        if peer == author:
            return False
        if current not in (Status.MEMBER, Status.JOINING) and not (
                ban and current in (Status.REMOVED, Status.LEFT, None)):
            return False
        removed_role = state.role(peer)
        if removed_role is Role.OWNER and (role is not Role.OWNER or _owners(state) == [peer]):
            return False
        state.status[peer] = Status.BANNED if ban else Status.REMOVED
        state.changed_by[peer] = author
        if peer not in open_fences:
            open_fences[peer] = max(_int(body, "seq", 2**32), state.joined_seq.get(peer, 0))
        if "epoch" in body:
            _open_epoch(state, entry, set(state.members()))
        return True
    if op == "rotate":
        return _open_epoch(state, entry, set(state.members()))
    if op == "settings":
        state.settings = _settings(body.get("settings", {}), state.settings)
        state.settings_by = author
        return True
    if op == "invite":
        key = _hex(body, "invite", 32).hex()
        if key in state.invites or len(state.invites) >= MAX_INVITES:
            return False
        state.invites[key] = Invite(key, _int(body, "expires", 2**62, 0),
                                    _int(body, "uses", MAX_INVITE_USES, 0), by=author)
        return True
    if op == "revoke_invite":
        key = _hex(body, "invite", 32).hex()
        revoked = state.invites.get(key)
        if revoked is None or revoked.revoked:
            return False
        state.invites[key] = replace(revoked, revoked=True)
        return True
    if op == "delete":
        target_author = _peer(body, "author")
        state.deleted.add((target_author, _hex(body, "post", 16)))
        return True
    return False


def _owners(state: RoomState) -> list[str]:
    return [p for p in state.members() if state.roles.get(p) is Role.OWNER]


def _open_epoch(state: RoomState, entry: Entry, recipients: set[str]) -> bool:
    """The entry opens a new epoch: its id and its key sealed to ``recipients``."""
    new = _hex(entry.body, "epoch", EPOCH_ID_SIZE)
    if new in state.holders:
        raise BadEntry("this epoch was opened before")
    keys = _keys(entry.body)
    delivered = {p for p in keys if p in recipients}
    state.epochs.append(Epoch(new, entry.author, len(state.epochs) + 1))
    state.holders[new] = delivered
    state.sealed[new] = {p: keys[p] for p in delivered}
    return True


def _settings(value: object, base: Settings) -> Settings:
    if not isinstance(value, dict):
        raise BadEntry("the settings are not an object")
    join, history = base.join, base.history
    rotate, name, description = base.rotate_on_leave, base.name, base.description
    if "join" in value:
        try:
            join = JoinMode(value["join"])
        except ValueError:
            raise BadEntry("the join mode is not open, invite or approve") from None
    for flag in ("history", "rotate_on_leave"):
        if flag in value and not isinstance(value[flag], bool):
            raise BadEntry(f"the setting {flag} is not true or false")
    history = value.get("history", history)
    rotate = value.get("rotate_on_leave", rotate)
    if "name" in value:
        if not isinstance(value["name"], str) or not 0 < len(value["name"]) <= 64:
            raise BadEntry("the room name is not 1 to 64 characters")
        name = value["name"]
    if "description" in value:
        if not isinstance(value["description"], str) or len(value["description"]) > 280:
            raise BadEntry("the description is longer than 280 characters")
        description = value["description"]
    return Settings(join, history, rotate, name, description)


def entry_of(author_key: bytes, lamport: int, post_id: bytes, author_seq: int, sent_at_ms: int,
             body: bytes) -> Entry | None:
    """A stored post of kind ``KIND_MEMBERSHIP`` as a log entry (None if its body is bad)."""
    try:
        parsed = parse_body(body)
    except BadEntry:
        return None
    return Entry(peer_id_from_public_key(author_key), lamport, author_key, post_id, author_seq,
                 sent_at_ms, parsed, hashlib.sha256(body).digest())
