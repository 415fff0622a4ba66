"""File transfer: offering, serving and fetching files on ``/kith/file/1.0.0``, verified chunk
by chunk.

Offers travel as direct messages (kind 2, so an offline contact gets them from the outbox) or
as room posts (kind 3). The receiver pulls: it fetches the chunk hash list, checks it against
the offer's ``hash``, then asks each source for a few chunks at a time, verifies every chunk
in a worker thread and writes it at its offset in a ``.part`` file. Each verified chunk is
recorded in SQLite as soon as it is written, and only what is recorded is shown as progress, so
a transfer interrupted in any way (connection lost, either app closed or killed) resumes where
it stopped as soon as a source is reachable again, from at least the progress last shown. When
every chunk is in, chunks verified before a restart are read back and checked once more (the OS
may have lost them in a crash), and only then does the file get a name that ``safe_file_name``
made harmless: the name is recorded first, then linked, then the ``.part`` removed, then the
transfer recorded complete. A crash between any two of these steps is finished at the next
start: a finished file found under the recorded name that still matches is the download.

Room files have several sources: the author and every member that completed a download. A
fetch asks connected members whether they hold the file (HAVE) and spreads chunk requests
over all of them in parallel. Hashing and disk I/O never run on the trio loop.

Serving keeps a file to its audience. A direct offer is served only to the contact it was
made to while they are a contact (removing them revokes it); a room file only to the room's
members. Every chunk served is checked against the offer's hash list first, so whatever
happens to the file on disk (edited, replaced by another file of the same name) its bytes
never go out under the offer: the sender's offer fails, and a member that held a room file
stops serving it.

The package, by concept: ``service`` (``FileTransfers``: what the user does, and where a
transfer's state moves by the steps of ``app.core.transfer_state``), ``intake`` (offers and
controls from peers, the handlers registered by payload kind), ``serving``, ``downloading``,
``disk`` (hashing, writing and naming, in worker threads), ``progress`` (speeds), and, for a
contact who is offline, ``mailbox_upload`` (leaving a file at their mailbox, sealed) and
``mailbox_source`` (reading one left at ours).
"""

from app.node.files.service import FileTransfers, TransferError
from app.node.files.serving import PROTOCOL_ID

__all__ = ["PROTOCOL_ID", "FileTransfers", "TransferError"]
