"""One message as the conversation view shows it: a small immutable row, not a widget.

Direct messages and group-room posts both become ``ChatItem``s, so one model and one delegate
serve both; the author fields are there for rooms, where several people write, and ``order`` is
the room's shared order (posts synced late must slot in where every member sees them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from app.core.records import Delivery, MessageInfo, PostState, Reactions, RoomPostInfo
from ui.conversation.notice import is_notice, notice_text

RoomOrder = tuple[int, str, str]  # (lamport, author key hex, post id hex)

# A room post's state shown with the DM glyphs: pending is the clock, confirmed one tick.
POST_DELIVERY = {
    PostState.PENDING: Delivery.SENDING,
    PostState.CONFIRMED: Delivery.SENT,
    PostState.RECEIVED: Delivery.RECEIVED,
}


@dataclass(frozen=True, slots=True)
class ChatItem:
    key: str                 # the message id in hex: stable across pages and state changes
    seq: int                 # local order in the conversation, for paging
    conversation: str        # the peer id (direct) or room id
    author_id: str           # who wrote it (you, for outgoing messages)
    author_name: str
    outgoing: bool
    text: str
    sent_at_ms: int          # the sender's clock
    state: Delivery
    error: str | None = None
    order: RoomOrder | None = None  # rooms only: the key rows are sorted by
    transfer: str | None = None     # a file card: its transfer (ui.conversation.file_offer)
    held_by: str | None = None      # sent, not delivered: the name of the mailbox holding it
    message_id: str = ""            # the message or post id (a file card's key is its transfer)
    reply_to: str | None = None     # the id of the message this one answers
    edited: bool = False
    reactions: Reactions = ()       # (emoji, (peer id, ...))
    notice: bool = False            # a governed room's notice (ui.conversation.notice)

    @classmethod
    def from_message(
        cls, info: MessageInfo, *, me: str = "", my_name: str = "", their_name: str = ""
    ) -> ChatItem:
        """A direct message: the author is you (outgoing) or the other side."""
        return cls(
            key=info.id,
            seq=info.seq,
            conversation=info.peer_id,
            author_id=me if info.outgoing else info.peer_id,
            author_name=my_name if info.outgoing else their_name,
            outgoing=info.outgoing,
            text=info.text,
            sent_at_ms=info.sent_at_ms,
            state=info.state,
            error=info.error,
            held_by=info.held_by,
            message_id=info.id,
            reply_to=info.reply_to,
            edited=info.edited_at is not None,
            reactions=info.reactions,
        )

    @classmethod
    def from_post(cls, info: RoomPostInfo, me: str = "") -> ChatItem:
        """A room post: the author is whoever wrote it; ``order`` places it in the room. A
        notice of a governed room is worded here (``me``: our peer id, for "you")."""
        notice = is_notice(info)
        return cls(
            key=info.id,
            seq=info.lamport,
            conversation=info.room_id,
            author_id=info.author,
            author_name=info.author_name,
            outgoing=info.outgoing,
            text=notice_text(info, me) if notice else info.text,
            sent_at_ms=info.sent_at_ms,
            state=POST_DELIVERY[info.state],
            order=(int(info.order[0]), str(info.order[1]), str(info.order[2])),
            message_id=info.id,
            reply_to=info.reply_to,
            edited=info.edited_at is not None,
            reactions=info.reactions,
            notice=notice,
        )

    @property
    def revision(self) -> int:
        """Changes whenever what the bubble shows changes (an edit, a reaction): layouts
        cached for the key are stale then."""
        return hash((self.text, self.edited, self.reactions, self.reply_to))

    def with_state(self, state: Delivery, error: str | None = None) -> ChatItem:
        return dataclasses.replace(self, state=state, error=error)

    @property
    def local_time(self) -> datetime:
        return datetime.fromtimestamp(self.sent_at_ms / 1000)

    @property
    def day(self) -> int:
        """The local calendar day (proleptic ordinal): day separators compare these."""
        return self.local_time.toordinal()
