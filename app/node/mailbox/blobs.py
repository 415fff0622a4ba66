"""File blobs at a mailbox, as the sender puts them and the recipient reads them: one stream,
one request at a time (docs/protocol.md 10.8)."""

from __future__ import annotations

from app.core import mailbox as mb
from app.node.framing import Stream, read_frame, write_frame

ANSWER_IDLE = 30.0  # an answer (a piece of up to 1 MiB) may take longer, if bytes keep coming


class BlobSession:
    """Blob requests on one open mailbox stream."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    async def _ask(self, request: mb.Request) -> mb.Answer:
        await write_frame(self._stream, mb.encode_request(request))
        answer = mb.decode_answer(await read_frame(self._stream, mb.MAX_ANSWER, idle=ANSWER_IDLE))
        if isinstance(answer, mb.Refused):
            raise mb.BlobRefused(answer.code, answer.description)
        return answer

    async def open(self, recipient: str, blob: bytes, size: int, pieces: int) -> mb.BlobHeld:
        """Declare the blob (or find it again): which of its pieces the mailbox holds."""
        answer = await self._ask(mb.BlobOpen(recipient, blob, size, pieces))
        if not isinstance(answer, mb.BlobHeld):
            raise mb.MailboxError("an unexpected answer to BLOB_OPEN")
        return answer

    async def put(self, recipient: str, blob: bytes, index: int, data: bytes) -> None:
        if not isinstance(await self._ask(mb.BlobPut(recipient, blob, index, data)), mb.Ok):
            raise mb.MailboxError("an unexpected answer to BLOB_PUT")

    async def get(self, blob: bytes, index: int) -> bytes | None:
        """Piece ``index``, or None when the mailbox does not hold it (REFUSED 9)."""
        try:
            answer = await self._ask(mb.BlobGet(blob, index))
        except mb.BlobRefused as exc:
            if exc.code == mb.REFUSED_NOT_HELD:
                return None
            raise
        if not isinstance(answer, mb.Piece) or answer.index != index:
            raise mb.MailboxError("an unexpected answer to BLOB_GET")
        return answer.data

    async def delete(self, blob: bytes) -> None:
        if not isinstance(await self._ask(mb.BlobDelete(blob)), mb.Ok):
            raise mb.MailboxError("an unexpected answer to BLOB_DELETE")
