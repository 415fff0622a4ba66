"""Mailboxes: sealed mail held by a trusted Kith while its recipient is offline.

``MailboxService`` serves one (``serve_mailbox``); ``MailboxClient`` uses ours and deposits at
contacts' ones, and opens streams for file blobs (``blobs``: putting and reading pieces).
docs/protocol.md ("Mailboxes") has the wire format, docs/networking.md the limits and what a
mailbox learns.
"""

from app.node.mailbox.client import MailboxClient, MailboxReceipts, parse_mailbox_addrs
from app.node.mailbox.service import DEFAULT_MAILBOX_LIMITS, MailboxLimits, MailboxService

__all__ = [
    "DEFAULT_MAILBOX_LIMITS", "MailboxClient", "MailboxLimits", "MailboxReceipts",
    "MailboxService", "parse_mailbox_addrs",
]
