"""py-libp2p's byte path made cheaper per byte: read-ahead on TCP, batched Yamux credit.

Measured on a 1 GiB file transfer, where two processes share two cores and every CPU cycle
spent per byte is on the critical path:

* py-libp2p reads the socket in exactly the pieces each layer asks for: two ``recv`` calls
  and two trio checkpoints per 64 KiB Noise message (its 2-byte length, then its body), plus
  the Yamux header reads. Reading ahead up to ``READ_AHEAD`` bytes per ``recv`` and serving
  the small reads from that buffer removes most of them.
* A Yamux data frame carried up to 64 KiB (header included), 17 bytes more than one Noise
  message holds, so every frame went out as a full Noise message and a 17-byte one: twice
  the encryptions, length prefixes and socket writes. Frames are capped to fit one message.
* Yamux's receiver sends a WINDOW_UPDATE frame (encrypted, written, then parsed by the
  sender) after every read, even a one-byte read of a length prefix: a 600-byte gossip RPC
  cost three credit frames, and credit frames were most of a room post's frames on every
  link. ``_credit_half_window`` gives go-yamux's rule instead: credit is returned once half
  the window has been consumed.
* A Yamux DATA frame's header and body travel in one Noise message, so once the header is
  read the body is already decrypted in memory; py-libp2p still reads it through
  ``read_exactly`` under a fresh timeout scope. ``_take_buffered_bodies`` hands it over directly.

None changes the protocol: only how bytes are grouped into frames and reads.
"""

from __future__ import annotations

from typing import Any

from libp2p.io.trio import TrioTCPStream
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux
from libp2p.stream_muxer.yamux.yamux import MAX_WINDOW_SIZE, Yamux, YamuxStream

READ_AHEAD = 256 * 1024
BULK_WINDOW = MAX_WINDOW_SIZE  # 16 MiB, the most a py-libp2p peer accepts

_applied = False


def tune_byte_path() -> None:
    """Apply these changes once per process, before any connection is made."""
    global _applied
    if _applied:
        return
    _applied = True
    yamux.MAX_MESSAGE_SIZE = MAX_PLAINTEXT_LENGTH  # read by YamuxStream.write at each call
    _add_read_ahead()
    _credit_half_window()
    _take_buffered_bodies()


def _add_read_ahead() -> None:
    unbuffered = TrioTCPStream.read

    async def read(self: TrioTCPStream, n: int | None = None) -> bytes:
        """Up to ``n`` bytes (any amount when ``n`` is None), as before, from a read-ahead."""
        if n == 0:
            return b""
        state: Any = self.__dict__
        ahead: bytes = state.get("_kith_ahead", b"")
        at: int = state.get("_kith_at", 0)
        if at >= len(ahead):
            ahead = await unbuffered(self, max(n or 0, READ_AHEAD))
            if not ahead:
                return ahead  # end of stream
            at = 0
        end = len(ahead) if n is None else min(at + n, len(ahead))
        state["_kith_ahead"], state["_kith_at"] = ahead, end
        if at == 0 and end == len(ahead):
            return ahead
        return ahead[at:end]

    TrioTCPStream.read = read  # type: ignore[method-assign]


def _credit_half_window() -> None:
    """Return Yamux receive credit only once half the window has been read (go-yamux's GrowTo).

    py-libp2p 0.8.1's ``YamuxStream._auto_tune_and_send_window_update``, which every
    ``YamuxStream.read`` awaits, sends a WINDOW_UPDATE whenever any read byte is not yet
    credited (its "partial slack" branch, taken whatever ``PY_YAMUX_RELEASE_ON_READ`` says), so
    a reader of small messages sends one frame per read. This replacement keeps the rest of
    that method (growing back to the target window, doubling the target when updates come
    within four round trips) and drops the per-read release. A sender never stalls for it: it
    has the other half of the window while the first half is read. It also takes no
    ``window_lock``: the check and the update have no ``await`` between them, so no other
    task can run in between (and no holder of that lock awaits while relying on
    ``recv_window``); the lock only cost every read a trip through the scheduler.
    Upstream still does all this on its main branch; the fix there is to drop the per-read
    and pending-release branches. tests/test_byte_path.py fails if an upgrade renames the
    method or the state it uses.
    """

    async def credit(self: YamuxStream, *, bytes_read: int = 0) -> None:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        read_uncredited = self.target_recv_window - (self.recv_window + buffered)
        if read_uncredited < self.target_recv_window // 2:
            return
        grant = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if grant > 0:
            await self.send_window_update(grant)

    YamuxStream._auto_tune_and_send_window_update = credit  # type: ignore[method-assign]


def _take_buffered_bodies() -> None:
    """Take a Yamux DATA frame's body straight from the Noise session when it is all there.

    py-libp2p 0.8.1's ``Yamux._read_data_body`` reads every body with ``read_exactly`` inside
    ``trio.fail_after`` (a timeout for a peer that announces a body and never sends it). A
    body that ``SecureSession`` already holds decrypted cannot wait, so it is returned as the
    same bytes ``read_exactly`` would return; anything else goes the original way. Upstream
    could do this in ``_read_data_body`` with a public "bytes buffered" on the session.
    tests/test_byte_path.py fails if an upgrade renames what this reads.
    """
    read_body = Yamux._read_data_body

    async def read_data_body(self: Yamux, length: int) -> bytes:
        session = self.secured_conn
        if (isinstance(session, SecureSession)
                and session.high_watermark - session.low_watermark >= length):
            return session._drain(length)
        return await read_body(self, length)

    Yamux._read_data_body = read_data_body  # type: ignore[method-assign]


async def widen_receive_window(stream: object, size: int) -> None:
    """Let the peer send up to ``size`` bytes on this Yamux stream before it needs credit.

    A Yamux stream starts with 256 KiB of credit and grows it only as reads keep up, and a
    py-libp2p writer that runs out of credit polls for more every 10 ms. A bulk download
    widens its window once, up front, so the sender never waits on credit; what is actually
    in flight stays bounded by the requests the receiver has made.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if not isinstance(muxed, YamuxStream):
        return
    async with muxed.window_lock:
        grow = size - muxed.recv_window
        if grow <= 0:
            return
        muxed.target_recv_window = max(muxed.target_recv_window, size)
        muxed.recv_window += grow
    await muxed.send_window_update(grow)
