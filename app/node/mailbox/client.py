"""Using mailboxes: registering with ours, collecting what they hold for us, and leaving
messages at a contact's mailbox when the contact is out of reach.

* **Ours** (``--mailbox``, Settings): each is dialled and registered with at start, whenever
  it connects, and every ``RENEW`` seconds; each registration carries our block list, so the
  mailbox refuses a blocked sender's deposits. While connected we collect every ``COLLECT``
  seconds, and at once on (re)connecting. Which mailboxes are ours travels as a record signed
  by our identity key (in our invites, profile answers and DHT record), so nobody can
  redirect our mail.
* **Collecting**: each held item is handed to the direct-message service as if it had come
  on a stream (``HeldOutbox.take_deposited``: signature, replay, order, block list, requests,
  quotas); the answers go back to each sender as one receipt (DM kind 48, through the outbox:
  directly, or through the sender's own mailbox), and only then are the items deleted at the
  mailbox. A crash in between fetches them again: they are duplicates, answered again.
* **Depositing** (``interfaces.MailDrop``): the outbox could not reach a contact, so each
  undelivered message goes to the contact's mailbox, the same sealed payload, in order,
  stopping at the first refusal. It keeps its place in the outbox until the contact's
  acknowledgement arrives (a resend later is a duplicate the contact answers again).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from app.core import dm
from app.core import mailbox as mb
from app.core.config import ConfigError
from app.core.events import (
    ContactMailbox,
    ContactMailboxes,
    MailboxReach,
    MailboxRefused,
    MailboxRegistered,
    MessageDeposited,
    MessageDepositRefused,
)
from app.core.identity import Identity
from app.core.invite import strip_p2p
from app.core.records import ContactState
from app.node.framing import FrameError, Stream, read_frame, write_frame
from app.node.host import connect_at
from app.node.interfaces import BlockList, Connections, ContactBook, Emit, HeldOutbox, Tasks
from app.node.isolation import is_local_fault
from app.node.mailbox.blobs import BlobSession
from app.node.mailbox.service import PROTOCOL_ID
from app.node.signal import Signal
from app.store.mailbox import HeldMessages, MailboxRecords

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 10.0
ANSWER_TIMEOUT = 30.0
RENEW = 6 * 3600.0         # registration renewed this often while connected
COLLECT = 60.0             # collecting while connected, this often
FIRST_RETRY = 5.0          # an unreachable mailbox is dialled again after this, doubling...
MAX_RETRY = 300.0          # ... up to this
DEPOSIT_BATCH = 64         # messages deposited per visit
RECEIPT_IDS = 64           # answers per receipt (a receipt body stays under 4 KiB)
REFUSAL_PAUSE = 300.0      # a mailbox that refused a deposit is not asked again for this long
DEPOSIT_RETRY = 120.0      # undeposited messages of offline contacts are tried again this often


def parse_mailbox_addrs(addrs: tuple[str, ...]) -> set[str]:
    """The peer ids of our mailboxes (``--mailbox``); a bad address is a ``ConfigError``."""
    if len(addrs) > mb.MAX_RECORD_MAILBOXES:
        raise ConfigError(f"at most {mb.MAX_RECORD_MAILBOXES} mailboxes can be used")
    ids = set()
    for addr in addrs:
        try:
            ids.add(mb.mailbox_peer_id(addr))
            multiaddr.Multiaddr(addr)
        except Exception as exc:  # noqa: BLE001 - multiaddr raises a zoo of types
            raise ConfigError(f"{addr!r} is not a mailbox address (/ip4/H/tcp/P/p2p/ID): "
                              f"{exc}") from None
    return ids


class MailboxUnavailable(Exception):
    """A mailbox could not be reached or did not answer in time."""


class Mailbox:
    """One of our mailboxes: where it is and how it is doing."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.peer_id = mb.mailbox_peer_id(addr)
        self.registered = False
        self.refused: str | None = None
        self.wake = Signal()


class MailboxReceipts:
    """DM kind 48: a contact's answers to messages of ours that a mailbox held for them.
    Never shown; each answer settles the message it names, as its ACK or REJECT would have."""

    shown = False

    def __init__(self, outbox: HeldOutbox) -> None:
        self._outbox = outbox

    def refusal(self, peer_id: str, message: dm.DirectMessage) -> None:
        return None

    def take(self, peer_id: str, message: dm.DirectMessage) -> bool:
        for reply in decode_receipt(message.text):
            self._outbox.answered(peer_id, reply)
        return False

    def present(self, message: object) -> None:
        return None

    def refused(self, message: object, reason: str) -> None:
        log.info("a receipt was refused: %s", reason)


def encode_receipt(replies: list[dm.Ack | dm.Reject]) -> str:
    body = {
        "ack": [r.message_id.hex() for r in replies if isinstance(r, dm.Ack)],
        "reject": [[r.message_id.hex(), r.reason] for r in replies if isinstance(r, dm.Reject)],
    }
    return json.dumps(body, separators=(",", ":"))


def decode_receipt(text: str) -> list[dm.Ack | dm.Reject]:
    """The answers in a receipt; anything malformed in it is skipped alone."""
    try:
        body = json.loads(text)
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    out: list[dm.Ack | dm.Reject] = []
    acks, rejects = body.get("ack", []), body.get("reject", [])
    for value in acks if isinstance(acks, list) else []:
        msg_id = _message_id(value)
        if msg_id is not None:
            out.append(dm.Ack(msg_id))
    for value in rejects if isinstance(rejects, list) else []:
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and (
                not isinstance(value[1], bool) and 0 <= value[1] <= 255):
            msg_id = _message_id(value[0])
            if msg_id is not None:
                out.append(dm.Reject(msg_id, value[1]))
    return out[:2 * RECEIPT_IDS]


def _message_id(value: object) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * dm.MESSAGE_ID_SIZE:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


class MailboxClient:
    """Our mailboxes (registering, collecting) and the ``MailDrop`` for contacts' ones."""

    def __init__(self, *, identity: Identity, host: IHost, nursery: Tasks, emit: Emit,
                 connections: Connections, outbox: HeldOutbox, blocks: BlockList,
                 contacts: ContactBook, held: HeldMessages, records: MailboxRecords,
                 mailboxes: tuple[str, ...]) -> None:
        self._identity = identity
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._outbox = outbox
        self._blocks = blocks
        self._contacts = contacts
        self._held = held
        self._records = records
        self.mine = [Mailbox(a) for a in mailboxes]
        self.own_record = self._sign()
        self.on_own_record: list[Callable[[], object]] = []  # told when we sign a new one
        self._depositing: set[str] = set()
        # (recipient, mailbox) -> when a mailbox that refused a deposit may be asked again.
        self._paused: dict[tuple[str, str], float] = {}

    def _sign(self) -> bytes:
        """Our record, signed now: a newer ``seq`` than any we signed before (a clock that
        went back aside)."""
        return mb.sign_record(self._identity, int(time.time() * 1000),
                              [m.addr for m in self.mine])

    def record_text(self) -> str:
        return mb.record_text(self.own_record)

    def start(self) -> None:
        for mailbox in self.mine:
            self._nursery.start_soon(self._keep, mailbox)
        self._nursery.start_soon(self._deposit_later)

    def contact_mailbox(self, peer_id: str) -> ContactMailbox:
        """Whether a contact has mailboxes, serves one (its identify answer lists the
        protocol; unknown while not connected), and is ours."""
        record = self.record_of(peer_id)
        serves: bool | None = None
        if self._connections.is_connected(peer_id):
            try:
                protocols = self._host.get_peerstore().get_protocols(ID.from_base58(peer_id))
                serves = mb.PROTOCOL_ID in protocols
            except Exception:  # noqa: BLE001 - identify has not answered yet
                serves = None
        return ContactMailbox(peer_id=peer_id, uses=tuple(record.mailbox_ids()) if record else (),
                              serves=serves, mine=peer_id in self.peer_ids())

    def use_contact(self, peer_id: str, addrs: list[str]) -> str | None:
        """Use the contact ``peer_id``, who serves a mailbox, as ours, at the first of
        ``addrs`` that is not relayed; the mailbox address, or None if it is ours already."""
        if self.contact_mailbox(peer_id).serves is not True:
            raise ConfigError("this contact does not keep messages for others (or is offline)")
        direct = [a for a in addrs if "/p2p-circuit" not in a]
        if not direct:
            raise ConfigError("no address is known for this contact")
        addr = f"{strip_p2p(direct[0])}/p2p/{peer_id}"
        return addr if self.use(addr) else None

    def use(self, addr: str) -> bool:
        """Use the mailbox at ``addr`` from now on (registering at once); a new signed record
        tells contacts the next time they ask. False if it is ours already."""
        mailbox = Mailbox(addr)
        if mailbox.peer_id in self.peer_ids():
            return False
        if len(self.mine) >= mb.MAX_RECORD_MAILBOXES:
            raise ConfigError(f"at most {mb.MAX_RECORD_MAILBOXES} mailboxes can be used")
        self.mine.append(mailbox)
        self.own_record = self._sign()
        for listener in self.on_own_record:
            listener()
        self._nursery.start_soon(self._keep, mailbox)
        return True

    async def _deposit_later(self) -> None:
        """Every ``DEPOSIT_RETRY`` s, offline contacts with messages that no mailbox holds yet
        get another try (their mailbox may have been out of reach, or full, last time)."""
        while True:
            await trio.sleep(DEPOSIT_RETRY)
            for peer_id in self._outbox.waiting_for():
                if self._connections.is_connected(peer_id) or self.record_of(peer_id) is None:
                    continue
                if any(self._held.held_by(m.seq) is None
                       for m in self._outbox.undelivered(peer_id, DEPOSIT_BATCH)):
                    self._outbox.kick(peer_id)

    def peer_ids(self) -> set[str]:
        return {m.peer_id for m in self.mine}

    def status(self) -> tuple[MailboxReach, ...]:
        return tuple(MailboxReach(m.peer_id, self._connections.is_connected(m.peer_id),
                                  m.registered) for m in self.mine)

    def peer_connected(self, peer_id: str) -> None:
        for mailbox in self.mine:
            if mailbox.peer_id == peer_id:
                mailbox.wake.set()

    def blocks_changed(self, peer_id: str = "") -> None:
        """Our block list changed: every mailbox of ours learns it now."""
        for mailbox in self.mine:
            mailbox.registered = False
            mailbox.wake.set()

    # -- contacts' records ---------------------------------------------------------------------

    def learn_record(self, peer_id: str, text: str) -> bool:
        """Keep ``peer_id``'s mailbox record if it is theirs, signed, and newer than the one
        held; a forged or stale one changes nothing. True if kept."""
        if self._contacts.state(peer_id) is not ContactState.CONTACT:
            return False
        try:
            record = mb.verify_record(peer_id, mb.record_bytes(text))
        except mb.MailboxError as exc:
            log.info("ignored a mailbox record for %s: %s", peer_id, exc)
            return False
        raw = mb.record_bytes(text)
        old = self.record_of(peer_id)
        if not self._records.put(peer_id, record.seq, raw):
            return False
        if old is not None and old.mailboxes != record.mailboxes:
            self._held.unmark_all(peer_id)  # what the old mailbox holds is left again
        if old is None or old.mailboxes != record.mailboxes:
            self._outbox.kick(peer_id)  # at once: a record from the DHT means out of reach
            self._emit(ContactMailboxes(peer_id=peer_id, mailboxes=tuple(record.mailbox_ids())))
        return True

    def record_of(self, peer_id: str) -> mb.MailboxRecord | None:
        raw = self._records.get(peer_id)
        if raw is None:
            return None
        try:
            return mb.verify_record(peer_id, raw)
        except mb.MailboxError:
            return None

    # -- file blobs (interfaces.MailboxBlobs) -------------------------------------------------

    def blob_mailbox(self, peer_id: str) -> str | None:
        """The mailbox to leave ``peer_id``'s files at: the first of their record's."""
        record = self.record_of(peer_id)
        return record.mailbox_ids()[0] if record is not None and record.mailboxes else None

    def is_mine(self, mailbox: str) -> bool:
        return mailbox in self.peer_ids()

    @asynccontextmanager
    async def blob_session(self, mailbox: str, recipient: str) -> AsyncIterator[BlobSession]:
        """A stream to ``mailbox``: one of ours, or one of ``recipient``'s (from their signed
        record: no other address is ever dialled for it)."""
        addrs = [m.addr for m in self.mine if m.peer_id == mailbox]
        record = self.record_of(recipient)
        if record is not None:
            addrs += [a for a in record.mailboxes if mb.mailbox_peer_id(a) == mailbox]
        if not addrs:
            raise MailboxUnavailable(f"{mailbox} is not a mailbox we know")
        stream = await self._open(mailbox, addrs)
        try:
            yield BlobSession(stream)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.reset()
            raise
        await stream.close()

    # -- talking to a mailbox ------------------------------------------------------------------

    async def _open(self, peer_id: str, addrs: list[str]) -> Stream:
        if not self._connections.is_connected(peer_id) and not await connect_at(
                self._host, peer_id, addrs, DIAL_TIMEOUT):
            raise MailboxUnavailable(f"mailbox {peer_id} is out of reach")
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                stream: Stream = await self._host.new_stream(ID.from_base58(peer_id),
                                                             [PROTOCOL_ID])
        except Exception as exc:  # noqa: BLE001 - a mailbox that does not serve, or is gone
            raise MailboxUnavailable(f"mailbox {peer_id}: {exc}") from None
        return stream

    @staticmethod
    async def _ask(stream: Stream, request: mb.Request) -> mb.Answer:
        await write_frame(stream, mb.encode_request(request))
        with trio.fail_after(ANSWER_TIMEOUT):
            return mb.decode_answer(await read_frame(stream, mb.MAX_ANSWER))

    # -- our mailboxes -------------------------------------------------------------------------

    async def _keep(self, mailbox: Mailbox) -> None:
        """Stay registered with ``mailbox`` and collect from it, for as long as we run."""
        retry = FIRST_RETRY
        renewed = -RENEW
        while True:
            wait = COLLECT
            try:
                if not mailbox.registered or trio.current_time() - renewed >= RENEW:
                    await self._register(mailbox)
                    renewed = trio.current_time()
                if mailbox.registered:
                    await self.collect(mailbox)
                    retry = FIRST_RETRY
                else:  # refused: asked again later (they may add us as a contact meanwhile)
                    wait, retry = retry, min(retry * 2, MAX_RETRY)
            except (MailboxUnavailable, mb.MailboxError, FrameError, trio.TooSlowError,
                    OSError) as exc:
                log.info("mailbox %s: %s", mailbox.peer_id, exc)
                mailbox.registered = False
                wait, retry = retry, min(retry * 2, MAX_RETRY)
            except Exception as exc:
                if is_local_fault(exc):
                    raise
                log.info("mailbox %s: %s", mailbox.peer_id, exc)
                mailbox.registered = False
                wait, retry = retry, min(retry * 2, MAX_RETRY)
            await mailbox.wake.wait(wait)

    async def _register(self, mailbox: Mailbox) -> None:
        stream = await self._open(mailbox.peer_id, [mailbox.addr])
        try:
            answer = await self._ask(stream, mb.Register(
                tuple(self._blocks.blocked()[:mb.MAX_BLOCKED])))
        finally:
            await stream.close()
        if isinstance(answer, mb.Ok):
            mailbox.registered, mailbox.refused = True, None
            self._emit(MailboxRegistered(mailbox=mailbox.peer_id))
        elif isinstance(answer, mb.Refused):
            mailbox.registered = False
            if mailbox.refused != answer.description:
                mailbox.refused = answer.description
                self._emit(MailboxRefused(mailbox=mailbox.peer_id, reason=answer.description))
        else:
            raise mb.MailboxError("an unexpected answer to REGISTER")

    async def collect(self, mailbox: Mailbox) -> int:
        """Fetch and handle everything ``mailbox`` holds for us, then let it delete that;
        how many items were handled."""
        stream = await self._open(mailbox.peer_id, [mailbox.addr])
        handled = 0
        try:
            after, more = 0, True
            while more:
                await write_frame(stream, mb.encode_request(mb.Fetch(after, mb.MAX_FETCH)))
                items: list[mb.Item] = []
                while True:
                    with trio.fail_after(ANSWER_TIMEOUT):
                        answer = mb.decode_answer(await read_frame(stream, mb.MAX_ANSWER))
                    if isinstance(answer, mb.Item):
                        if len(items) >= mb.MAX_FETCH or answer.id <= after:
                            raise mb.MailboxError("the mailbox answered out of order")
                        items.append(answer)
                        after = answer.id
                        continue
                    if isinstance(answer, mb.End):
                        more = answer.more and bool(items)
                        break
                    if isinstance(answer, mb.Refused):
                        mailbox.registered = False
                        raise MailboxUnavailable(answer.description)
                    raise mb.MailboxError("an unexpected answer to FETCH")
                if not items:
                    break
                self._handle(items)
                handled += len(items)
                answer = await self._ask(stream, mb.Delete(tuple(i.id for i in items)))
                if not isinstance(answer, mb.Ok):
                    raise mb.MailboxError("the mailbox did not delete what we collected")
        finally:
            await stream.close()
        return handled

    def _handle(self, items: list[mb.Item]) -> None:
        """Each item as a direct message, in the mailbox's order; the answers are queued to
        their senders as receipts before the items are deleted."""
        answers: dict[str, list[dm.Ack | dm.Reject]] = {}
        for item in items:
            taken = self._outbox.take_deposited(item.sender, item.payload)
            if taken is None:
                continue
            reply, kind = taken
            if kind != dm.KIND_MAILBOX_RECEIPT:  # receipts are not answered
                answers.setdefault(item.sender, []).append(reply)
        for sender, replies in answers.items():
            if self._contacts.state(sender) not in (ContactState.CONTACT, ContactState.REQUEST):
                continue
            for start in range(0, len(replies), RECEIPT_IDS):
                chunk = replies[start:start + RECEIPT_IDS]
                self._outbox.queue(sender, dm.KIND_MAILBOX_RECEIPT, encode_receipt(chunk))

    # -- contacts' mailboxes -------------------------------------------------------------------

    async def deposit(self, peer_id: str) -> None:
        """``interfaces.MailDrop``: leave ``peer_id``'s undelivered messages at their mailbox,
        the first of their mailboxes that takes them."""
        record = self.record_of(peer_id)
        if record is None or not record.mailboxes or peer_id in self._depositing:
            return
        self._depositing.add(peer_id)
        try:
            for addr in record.mailboxes:
                try:
                    if await self._deposit_at(peer_id, addr):
                        return
                except (MailboxUnavailable, mb.MailboxError, FrameError, trio.TooSlowError,
                        OSError) as exc:
                    log.info("could not deposit for %s at %s: %s", peer_id, addr, exc)
                except Exception as exc:
                    if is_local_fault(exc):
                        raise
                    log.info("could not deposit for %s at %s: %s", peer_id, addr, exc)
        finally:
            self._depositing.discard(peer_id)

    async def _deposit_at(self, peer_id: str, addr: str) -> bool:
        """Deposit what this mailbox does not hold yet; True when nothing is left to leave."""
        mailbox = mb.mailbox_peer_id(addr)
        if self._paused.get((peer_id, mailbox), 0.0) > trio.current_time():
            return False  # it refused lately: not asked again before the pause ends
        pending = [m for m in self._outbox.undelivered(peer_id, DEPOSIT_BATCH)
                   if self._held.held_by(m.seq) is None]
        if not pending:
            return True
        stream = await self._open(mailbox, [addr])
        try:
            for message in pending:
                if self._connections.is_connected(peer_id):
                    return True  # they came online: the outbox delivers directly
                answer = await self._ask(stream, mb.Deposit(peer_id, self._outbox.sealed(message)))
                if isinstance(answer, mb.Refused):
                    log.info("mailbox %s refused a message for %s: %s", mailbox, peer_id,
                             answer.description)
                    now = trio.current_time()
                    self._paused = {k: t for k, t in self._paused.items() if t > now}
                    self._paused[(peer_id, mailbox)] = now + REFUSAL_PAUSE
                    self._emit(MessageDepositRefused(id=message.id, peer_id=peer_id,
                                                     mailbox=mailbox, reason=answer.description))
                    return False  # in order: nothing after a refused one
                if not isinstance(answer, mb.Ok):
                    raise mb.MailboxError("an unexpected answer to DEPOSIT")
                self._held.mark(message.seq, mailbox)
                self._outbox.mark_sent(message)
                self._emit(MessageDeposited(id=message.id, peer_id=peer_id, mailbox=mailbox,
                                            kind=message.kind))
        finally:
            await stream.close()
        return True
