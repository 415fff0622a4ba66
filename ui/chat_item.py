"""One message as the conversation view shows it: a small immutable row, not a widget.

Direct messages and (next) group-room posts both become ``ChatItem``s, so one model and one
delegate serve both; the author fields are there for rooms, where several people write.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from app.core.records import Delivery, MessageInfo


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
        )

    def with_state(self, state: Delivery, error: str | None = None) -> ChatItem:
        return dataclasses.replace(self, state=state, error=error)

    @property
    def local_time(self) -> datetime:
        return datetime.fromtimestamp(self.sent_at_ms / 1000)

    @property
    def day(self) -> int:
        """The local calendar day (proleptic ordinal): day separators compare these."""
        return self.local_time.toordinal()
