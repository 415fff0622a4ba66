"""``/kith/dm/1.0.0``: sending from the persistent outbox, receiving, acknowledging.

Sending: one task per peer with undelivered messages. It opens a stream, writes the outbox in
order (up to ``WINDOW`` unacknowledged at once), marks each ``sent`` once written and
``delivered`` when the ACK arrives, and keeps the stream for ``IDLE`` seconds for the next
message. If the stream breaks, everything unacknowledged is written again, in order, on a new
one; the recipient deduplicates by message id, so each message is shown exactly once.

Receiving: frames are handled in order. Each is decrypted, verified, deduplicated, stored,
announced (with the unread count and the contact's list entry), and only then acknowledged: an
acknowledgement that cannot be written (the sender just died) changes nothing here, and the
resend is a duplicate. What a payload means is up to the handler registered for its kind
(``kinds``: text here, file offers and controls by ``FileTransfers``); every kind but text stays
``pending`` in the store until its handler is done, and one left pending by a crash is handled
at the next start, or when its resend arrives. A frame that fails any check resets the stream
(the connection stays usable); a blocked peer's streams are reset at once. The first frame must
arrive within the resource manager's ``first_frame_timeout``, each later one within
``RECEIVE_IDLE`` (longer than the sender's ``IDLE``). What a non-contact may leave here, and how
many file offers wait, is the resource manager's call: the rest is REJECTed (code 4).
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from app.core import dm
from app.core.events import (
    ContactChanged,
    MessageDelivered,
    MessageFailed,
    MessageQueued,
    MessageReceived,
    MessageSent,
    UnreadChanged,
)
from app.core.records import ContactState, Delivery, MessageInfo
from app.node.contacts import ContactError
from app.node.framing import FrameError, Stream, encode_frame, guarded, read_frame, write_frame
from app.node.interfaces import (
    Connections,
    Dialer,
    DmKindHandler,
    Emit,
    LocalPeer,
    MailDrop,
    MessageRequests,
    Quotas,
    Refusal,
    Tasks,
)
from app.node.isolation import is_local_fault
from app.node.payloads import PayloadKinds
from app.node.signal import Signal
from app.store.messages import MessageStore

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol(dm.PROTOCOL_ID)
WINDOW = 64            # unacknowledged messages in flight per peer
ACK_TIMEOUT = 30.0     # no ACK progress for this long: the stream is dead, start over
IDLE = 20.0            # keep an idle outgoing stream this long for the next message
RECEIVE_IDLE = 30.0    # a receiving stream with no next frame for this long is closed
OPEN_TIMEOUT = 10.0
RETRY_PAUSE = 2.0


class TextMessages:
    """Kind 1, text: shown as it is; a refused one is marked failed in its conversation."""

    shown = True

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    def refusal(self, peer_id: str, message: dm.DirectMessage) -> Refusal | None:
        return None  # the resource manager's quotas apply to every kind alike

    def take(self, peer_id: str, message: dm.DirectMessage) -> bool:
        return True

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return message

    def refused(self, message: MessageInfo, reason: str) -> None:
        self._emit(MessageFailed(id=message.id, peer_id=message.peer_id, reason=reason))


def _as_stored(peer_id: str, message: MessageInfo) -> tuple[int, str]:
    return message.kind, message.text


class DeliveryStalled(Exception):
    """The recipient stopped acknowledging on this stream."""


class DirectMessages:
    """The outbox (``interfaces.Outbox``) and the receiving end of ``/kith/dm/1.0.0``.

    ``kinds`` hands each kind of payload to its handler (``interfaces.DmKindHandler``); text is
    this service's own, other services register theirs when the node is wired.
    """

    def __init__(self, store: MessageStore, *, us: LocalPeer, host: IHost, nursery: Tasks,
                 emit: Emit, contacts: MessageRequests, dialer: Dialer, connections: Connections,
                 quotas: Quotas, first_frame_timeout: float,
                 unread_total: Callable[[], int]) -> None:
        self.store = store
        self._us = us
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._contacts = contacts
        self._dialer = dialer
        self._connections = connections
        self._quotas = quotas
        self._first_frame_timeout = first_frame_timeout
        self._unread_total = unread_total
        self.kinds: PayloadKinds[DmKindHandler] = PayloadKinds("direct message")
        self.kinds.register(dm.KIND_TEXT, TextMessages(emit))
        self._active: set[str] = set()
        self._kick: dict[str, Signal] = {}
        self.mail_drop: MailDrop | None = None  # where to leave what cannot be delivered now
        self._kicks: dict[str, int] = {}  # kicks per peer, to see one that came meanwhile
        self._relayed_conns: weakref.WeakKeyDictionary[object, bool] = (
            weakref.WeakKeyDictionary())
        self.held_by: Callable[[int], str | None] = lambda seq: None  # which mailbox holds seq
        # How a stored outgoing message goes on the wire: (kind, body). As stored, unless the
        # node wires another (a reply is stored as text and sent as kind 16 or as a quote).
        self.wire_form: Callable[[str, MessageInfo], tuple[int, str]] = _as_stored

    def start(self) -> None:
        self._host.set_stream_handler(
            PROTOCOL_ID, guarded(PROTOCOL_ID, self._receive, timeout=None)
        )
        self._handle_pending()
        for peer_id in self.store.peers_with_outbox():
            self.kick(peer_id)

    def _handle_pending(self) -> None:
        """Messages stored before a crash that cut their handling short."""
        me = self._us.identity.peer_id
        for stored in self.store.pending():
            message = dm.DirectMessage(
                message_id=bytes.fromhex(stored.id), sender=stored.peer_id, recipient=me,
                sent_at_ms=stored.sent_at_ms, kind=stored.kind, text=stored.text,
            )
            request = self._contacts.state(stored.peer_id) is ContactState.REQUEST
            try:
                self._take(stored, message, request)
            except Exception as exc:  # a full disk, or a bug: left pending for the next start
                if is_local_fault(exc):
                    raise
                log.warning("could not handle stored message %s: %s", stored.id, exc,
                            exc_info=not isinstance(exc, sqlite3.Error))

    def _shown(self, kind: int) -> bool:
        handler = self.kinds.get(kind)
        return handler is not None and handler.shown

    # -- sending ------------------------------------------------------------------------------

    async def send(self, peer_id: str, text: str, reply_to: str | None = None) -> MessageInfo:
        state = self._contacts.state(peer_id)
        if state is None:
            raise ContactError("add this person as a contact before writing to them")
        if state is ContactState.BLOCKED:
            raise ContactError("this person is blocked; unblock them to write")
        if state is ContactState.REQUEST:
            await self._contacts.accept(peer_id)  # answering a request accepts it
        return self.queue(peer_id, dm.KIND_TEXT, text, reply_to=reply_to)

    def queue(self, peer_id: str, kind: int, body: str, reply_to: str | None = None
              ) -> MessageInfo:
        """Put a payload of ``kind`` in the persistent outbox (``interfaces.Outbox``); the
        conversation shows it at once if its kind is shown.

        This never accepts a message request: declining a stranger's file must not make them
        a contact. The outbox only delivers to contacts, so a payload for someone still in
        requests waits until they are accepted.
        """
        state = self._contacts.state(peer_id)
        if state is None:
            raise ContactError("add this person as a contact first")
        if state is ContactState.BLOCKED:
            raise ContactError("this person is blocked; unblock them first")
        msg_id = dm.new_message_id()
        sent_at = int(time.time() * 1000)
        # A bad payload fails here, with the caller, not later in the outbox.
        dm.check_message(self._us.identity, peer_id, body, kind=kind)
        info = self.store.queue_outgoing(peer_id, msg_id, body, sent_at, kind=kind,
                                         reply_to=reply_to)
        handler = self.kinds.get(kind)
        shown = handler.present(info) if handler is not None else None
        if shown is not None:
            self._emit(MessageQueued(message=shown))
            self._changed(peer_id)
        self.kick(peer_id)
        return info

    async def retry(self, msg_id_hex: str) -> MessageInfo:
        found = self.store.find_outgoing(msg_id_hex)
        if found is None:
            raise ContactError(f"no outgoing message {msg_id_hex}")
        info = self.store.set_state(
            found.peer_id, bytes.fromhex(found.id), Delivery.SENDING, only_from=(Delivery.FAILED,)
        )
        self.kick(found.peer_id)
        return info or found

    def kick(self, peer_id: str) -> None:
        """Something to send, or the peer just connected: make sure a sender runs."""
        signal = self._kick.setdefault(peer_id, Signal())
        self._kicks[peer_id] = self._kicks.get(peer_id, 0) + 1
        if peer_id in self._active:
            signal.set()
        elif self.store.outbox(peer_id, limit=1):
            self._active.add(peer_id)
            self._nursery.start_soon(self._deliver, peer_id)

    async def _deliver(self, peer_id: str) -> None:
        try:
            while self.store.outbox(peer_id, limit=1):
                if self._contacts.state(peer_id) is not ContactState.CONTACT:
                    return
                kicks = self._kicks.get(peer_id, 0)
                if not self._connections.is_connected(peer_id):
                    await self._dialer.dial(peer_id)
                    # Checked again after the await: a connection that arrived meanwhile (its
                    # kick found this task still active) must not be missed.
                    if not self._connections.is_connected(peer_id):
                        if self.mail_drop is None:
                            return  # the dial loop calls kick() when the peer connects
                        await self.mail_drop.deposit(peer_id)
                        if self._kicks.get(peer_id, 0) == kicks:
                            return
                        continue  # queued while we were away: deposited too
                try:
                    await self._deliver_on_stream(peer_id)
                except Exception as exc:  # noqa: BLE001 - retried on a fresh stream
                    log.info("delivery to %s interrupted: %s", peer_id, exc)
                    await trio.sleep(RETRY_PAUSE)
        finally:
            self._active.discard(peer_id)

    async def _deliver_on_stream(self, peer_id: str) -> None:
        with trio.fail_after(OPEN_TIMEOUT):
            stream = await self._host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
        signal = self._kick.setdefault(peer_id, Signal())
        inflight: dict[bytes, MessageInfo] = {}
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_replies, stream, peer_id, inflight, signal)
                last_seq = 0
                while True:
                    room = WINDOW - len(inflight)
                    batch = (
                        self.store.outbox(peer_id, after_seq=last_seq, limit=room) if room else []
                    )
                    if batch:
                        await self._write_batch(stream, peer_id, batch, inflight)
                        last_seq = batch[-1].seq
                        continue
                    if not inflight:
                        if not await signal.wait(IDLE):
                            break  # idle: close the stream; a new message opens another
                        continue
                    if not await signal.wait(ACK_TIMEOUT):
                        raise DeliveryStalled(f"no acknowledgement for {ACK_TIMEOUT:.0f} s")
                nursery.cancel_scope.cancel()
            await stream.close()
        except BaseException:
            await stream.reset()
            raise

    async def _write_batch(
        self, stream: Stream, peer_id: str, batch: list[MessageInfo],
        inflight: dict[bytes, MessageInfo],
    ) -> None:
        frames = []
        for message in batch:
            msg_id = bytes.fromhex(message.id)
            kind, body = self.wire_form(peer_id, message)
            frames.append(encode_frame(dm.encode_message(
                self._us.identity, peer_id, body,
                message_id=msg_id, sent_at_ms=message.sent_at_ms, kind=kind,
            )))
            inflight[msg_id] = message
        await stream.write(b"".join(frames))
        for message in batch:
            if message.state is Delivery.SENDING and self.store.set_state(
                peer_id, bytes.fromhex(message.id), Delivery.SENT, only_from=(Delivery.SENDING,)
            ) and self._shown(message.kind):
                self._emit(MessageSent(id=message.id, peer_id=peer_id, kind=message.kind))

    async def _read_replies(
        self, stream: Stream, peer_id: str, inflight: dict[bytes, MessageInfo], signal: Signal
    ) -> None:
        while True:
            reply = dm.decode_reply(await read_frame(stream, dm.MAX_FRAME))
            message = inflight.pop(reply.message_id, None)
            if message is None:
                raise FrameError("acknowledgement for a message not in flight")
            if isinstance(reply, dm.Ack):
                if self.store.set_state(
                    peer_id, reply.message_id, Delivery.DELIVERED,
                    only_from=(Delivery.SENDING, Delivery.SENT),
                ) and self._shown(message.kind):
                    self._emit(MessageDelivered(id=reply.message_id.hex(), peer_id=peer_id,
                                                kind=message.kind))
            else:
                reason = reply.description
                handler = self.kinds.get(message.kind)
                if self.store.set_state(peer_id, reply.message_id, Delivery.FAILED, reason) and (
                        handler is not None):
                    handler.refused(message, reason)
            signal.set()

    # -- receiving ----------------------------------------------------------------------------

    async def _receive(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        if self._contacts.state(peer_id) is ContactState.BLOCKED:
            log.info("refused a message stream from blocked %s", peer_id)
            await stream.reset()
            return
        wait = self._first_frame_timeout
        while True:
            try:
                with trio.fail_after(wait):
                    payload = await read_frame(stream, dm.MAX_FRAME)
            except StreamEOF:
                await stream.close()
                return
            except trio.TooSlowError:
                log.info("closing a message stream from %s: no frame for %.0f s", peer_id, wait)
                await stream.reset()
                return
            wait = RECEIVE_IDLE
            try:
                message = dm.decode_message(self._us.identity, peer_id, payload)
            except dm.DmError as exc:
                if exc.reject_reason is None or exc.message_id is None:
                    raise  # guarded() logs it and resets the stream
                log.info("rejecting a message from %s: %s", peer_id, exc)
                await write_frame(stream, dm.encode_reject(exc.message_id, exc.reject_reason))
                continue
            refusal = self._refusal(peer_id, message)
            if refusal is not None:
                await write_frame(stream, dm.encode_reject(message.message_id, refusal))
                continue
            await self._accept(stream, peer_id, message)

    def take_deposited(self, sender: str, payload: bytes
                       ) -> tuple[dm.Ack | dm.Reject, int | None] | None:
        """A MESSAGE payload that a mailbox held for us, left there by ``sender`` (whom the
        mailbox's connection authenticated; the box opens only with that sender's key): the
        same checks and handling as a frame on a stream. The answer the sender is owed (it
        goes back in a receipt) and the message's kind when it opened, or None for a payload
        that is dropped."""
        if self._contacts.state(sender) is ContactState.BLOCKED:
            return None
        try:
            message = dm.decode_message(self._us.identity, sender, payload)
        except dm.DmError as exc:
            log.info("a message from %s held by a mailbox: %s", sender, exc)
            if exc.reject_reason is None or exc.message_id is None:
                return None
            return dm.Reject(exc.message_id, exc.reject_reason), None
        refusal = self._refusal(sender, message)
        if refusal is not None:
            return dm.Reject(message.message_id, refusal), message.kind
        self._store_and_take(sender, message, via="mailbox")
        return dm.Ack(message.message_id), message.kind

    def waiting_for(self) -> list[str]:
        return self.store.peers_with_outbox()

    def undelivered(self, peer_id: str, limit: int) -> list[MessageInfo]:
        """The outbox toward ``peer_id``, oldest first."""
        return self.store.outbox(peer_id, limit=limit)

    def sealed(self, message: MessageInfo) -> bytes:
        """An outgoing message's MESSAGE payload, as written on a stream (a fresh nonce)."""
        return dm.encode_message(
            self._us.identity, message.peer_id, message.text,
            message_id=bytes.fromhex(message.id), sent_at_ms=message.sent_at_ms,
            kind=message.kind)

    def mark_sent(self, message: MessageInfo) -> None:
        """``message`` left this device some other way than a stream (a mailbox holds it)."""
        if message.state is Delivery.SENDING and self.store.set_state(
            message.peer_id, bytes.fromhex(message.id), Delivery.SENT,
            only_from=(Delivery.SENDING,)
        ) and self._shown(message.kind):
            self._emit(MessageSent(id=message.id, peer_id=message.peer_id, kind=message.kind))

    def answered(self, peer_id: str, reply: dm.Ack | dm.Reject) -> None:
        """The recipient's answer to one of our messages, by a way other than its stream (a
        receipt that came through a mailbox)."""
        found = self.store.get(peer_id, reply.message_id, outgoing=True)
        if found is None:
            return
        if isinstance(reply, dm.Ack):
            if self.store.set_state(
                peer_id, reply.message_id, Delivery.DELIVERED,
                only_from=(Delivery.SENDING, Delivery.SENT),
            ) and self._shown(found.kind):
                self._emit(MessageDelivered(id=found.id, peer_id=peer_id, kind=found.kind))
            return
        handler = self.kinds.get(found.kind)
        if self.store.set_state(peer_id, reply.message_id, Delivery.FAILED, reply.description,
                                only_from=(Delivery.SENDING, Delivery.SENT)) and (
                handler is not None):
            handler.refused(found, reply.description)

    def _refusal(self, peer_id: str, message: dm.DirectMessage) -> int | None:
        """A REJECT code for a message this node will not keep (a limit), or None."""
        if self.store.get(peer_id, message.message_id, outgoing=False) is not None:
            return None  # a retry of one we hold: acknowledged again
        handler = self.kinds.get(message.kind)
        if handler is None:
            log.info("rejecting a message of kind %d from %s: nothing here handles it",
                     message.kind, peer_id)
            return dm.REJECT_UNSUPPORTED_KIND
        refused_kind = handler.refusal(peer_id, message)
        if refused_kind is not None:
            self._quotas.refused(peer_id, refused_kind.limit, refused_kind.detail,
                                 peer_id=peer_id)
            return refused_kind.code
        state = self._contacts.state(peer_id)
        refused = self._quotas.message_refusal(
            peer_id, contact=state is ContactState.CONTACT, known=state is not None,
            stored=lambda: self.store.incoming_usage(peer_id),
            pending_requests=self._contacts.requests,
            size=len(message.text.encode("utf-8")),
        )
        if refused is None:
            return None
        limit, detail = refused
        # Many throwaway ids hitting the cap on requests make one notice, not one each.
        self._quotas.refused(peer_id if limit == "request_quota" else "*", limit, detail,
                             peer_id=peer_id)
        return dm.REJECT_QUOTA

    async def _accept(self, stream: Stream, peer_id: str, message: dm.DirectMessage) -> None:
        if self._contacts.state(peer_id) is ContactState.BLOCKED:
            raise ContactError("blocked while the stream was open")
        self._store_and_take(peer_id, message, via=self._route(peer_id))
        await write_frame(stream, dm.encode_ack(message.message_id))

    def _route(self, peer_id: str) -> str:
        """How a message on a stream from ``peer_id`` came: "relay" when every connection to
        them goes through a circuit relay, else "direct"."""
        relayed = [self._relayed(c) for c in self._connections.connections_to(peer_id)]
        return "relay" if relayed and all(relayed) else "direct"

    def _relayed(self, conn: object) -> bool:
        """Whether ``conn`` goes through a circuit relay, worked out once per connection: its
        addresses do not change, and writing them out as text cost more than storing the
        message."""
        known = self._relayed_conns.get(conn)
        if known is None:
            known = any("/p2p-circuit" in str(a) for a in _transport_addrs(conn))
            self._relayed_conns[conn] = known
        return known

    def _store_and_take(self, peer_id: str, message: dm.DirectMessage, via: str) -> None:
        message = dataclasses.replace(message, via=via)
        request = self._contacts.note_request(peer_id) or (
            self._contacts.state(peer_id) is ContactState.REQUEST
        )
        stored = self.store.store_incoming(
            peer_id, message.message_id, message.text, message.sent_at_ms, kind=message.kind
        )
        if stored is None:  # a resend: handled already, unless a failure left it pending
            stored = self.store.pending_one(peer_id, message.message_id)
        if stored is not None:
            self._take(stored, message, request, via)
        else:
            log.debug("duplicate message %s from %s", message.message_id.hex(), peer_id)

    def _take(self, stored: MessageInfo, message: dm.DirectMessage, request: bool,
              via: str = "direct") -> None:
        """What a stored incoming message leads to: its kind's handler does what it means,
        then the conversation shows it (an event, the contact's list entry, the unread count).

        The store keeps every kind but text pending until it is handled: a crash in between
        leaves it to ``_handle_pending`` at the next start, or to its resend.
        """
        peer_id = stored.peer_id
        handler = self.kinds.get(message.kind)
        if handler is None:
            return  # refused when it arrived; one stored by a version that handled it waits
        new = handler.take(peer_id, message)
        if message.kind != dm.KIND_TEXT:
            self.store.settle(stored.seq)
        shown = handler.present(stored) if new else None
        if shown is None:
            return
        self._emit(MessageReceived(
            id=shown.id, from_=peer_id, text=shown.text, sent_at=shown.sent_at_ms,
            request=request, message=shown, kind=shown.kind, via=via, reply_to=shown.reply_to,
        ))
        self._changed(peer_id)
        self._emit(UnreadChanged(total=self._unread_total()))

    def _changed(self, peer_id: str) -> None:
        """The contact's list entry (preview, unread) changed: tell the views."""
        info = self._contacts.info(peer_id)
        if info is not None:
            self._emit(ContactChanged(contact=info))

    # -- reading ------------------------------------------------------------------------------

    async def history(self, peer_id: str, before_seq: int | None, limit: int) -> list[MessageInfo]:
        page = self.store.history(peer_id, before_seq, max(1, min(limit, 1000)))
        return [dataclasses.replace(m, held_by=self.held_by(m.seq))
                if m.outgoing and m.state is Delivery.SENT else m for m in page]

    async def mark_read(self, peer_id: str) -> None:
        if self.store.mark_read(peer_id):
            self._changed(peer_id)
            self._emit(UnreadChanged(total=self._unread_total()))


def _transport_addrs(conn: object) -> list[object]:
    try:
        return list(conn.get_transport_addresses())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a connection closing, or one that cannot say
        return []
