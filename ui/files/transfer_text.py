"""The words for a file transfer: its size, the time left, and one line saying where it stands.

File cards in the conversation and the transfers panel say the same thing the same way.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QCoreApplication

from app.core.records import TransferInfo
from app.core.transfer_state import TransferState
from ui.files.file_actions import is_transferring


def human_size(size: float) -> str:
    """1 023 bytes, 1.0 KB, 12.5 MB: decimal units, as file managers show them."""
    if size < 1000:
        return QCoreApplication.translate("FileCard", "{n} bytes").format(n=int(size))
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        size /= 1000
        if size < 1000 or unit == "PB":
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
    return ""


def duration_text(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return QCoreApplication.translate("FileCard", "{n} s left").format(n=seconds)
    if seconds < 3600:
        return QCoreApplication.translate("FileCard", "{n} min left").format(
            n=math.ceil(seconds / 60))
    return QCoreApplication.translate("FileCard", "{h} h {m} min left").format(
        h=seconds // 3600, m=seconds % 3600 // 60)


def status_text(info: TransferInfo | None, speed: float, peer_name: str) -> str:
    """One line that says where the transfer stands, in plain words."""
    tr = QCoreApplication.translate
    if info is None:
        return tr("FileCard", "Looking up the file…")
    state = info.state
    if is_transferring(info):
        percent = int(100 * info.bytes / info.size) if info.size else 100
        parts = [tr("FileCard", "{p}%").format(p=percent)]
        if state is TransferState.PAUSED:
            parts.append(tr("FileCard", "Paused"))
        elif speed > 0:
            parts.append(tr("FileCard", "{speed}/s").format(speed=human_size(speed)))
            parts.append(duration_text((info.size - info.bytes) / speed))
        return " · ".join(parts)
    if state is TransferState.COMPLETE:
        return tr("FileCard", "Complete")
    if state is TransferState.DECLINED:
        return tr("FileCard", "Declined")
    if state is TransferState.CANCELLED:
        return tr("FileCard", "Cancelled")
    if state is TransferState.FAILED:
        return tr("FileCard", "Failed: {reason}").format(
            reason=info.reason or tr("FileCard", "unknown reason"))
    if info.outgoing:
        if info.room_id:
            return tr("FileCard", "Shared with the room")
        if info.held_by:
            return tr("FileCard", "Waiting in {name}'s mailbox, sealed").format(name=peer_name)
        return tr("FileCard", "Waiting for {name} to accept").format(name=peer_name)
    if state is TransferState.RECEIVING:
        return tr("FileCard", "Starting…")
    return tr("FileCard", "{name} offers this file").format(name=peer_name)
