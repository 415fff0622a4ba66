"""The window's one copy of every file transfer's live state, shared by cards and the panel.

File cards are painted from this cache instead of from the message rows: a transfer's progress
changes several times a second while the message that offered it never changes. It is filled
from ``client.transfers()`` once, then kept current from the ``File*`` events it subscribes to
(and a ``client.transfer(id)`` look-up when an event says less than a ``TransferInfo`` does),
and says ``changed(transfer id)`` so whoever shows that transfer repaints it. Each event says
which state it leaves its transfer in (``FileEvent.transfer_state``), so the cache never decides
that for itself. Speed is the client's (``TransferInfo.speed``, kept current from
``FileProgress.speed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.core.events import (
    FileAccepted,
    FileCancelled,
    FileComplete,
    FileDeclined,
    FileDeposited,
    FileEvent,
    FileFailed,
    FileOffer,
    FileOffered,
    FilePaused,
    FileProgress,
    FileResumed,
)
from app.core.records import TransferInfo, short_peer_id
from app.core.transfer_state import Step, TransferState, target

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import EventBridge, TaskRunner

class TransferCache(QObject):
    """TransferInfo by transfer id; ``changed(id)`` after every update, ``added(id)`` for new."""

    changed = Signal(str)
    added = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._infos: dict[str, TransferInfo] = {}
        self._order: list[str] = []
        self._client: KithClient | None = None
        self._runner: TaskRunner | None = None
        self._asking: set[str] = set()
        self._versions: dict[str, int] = {}  # bumped by events: a slower answer must not win
        self.name_of: Callable[[str], str] = short_peer_id  # peer or room id -> shown name
        self.is_room: Callable[[str], bool] = lambda _key: False  # the window knows its rooms

    # -- reading ------------------------------------------------------------------------------

    def get(self, transfer: str) -> TransferInfo | None:
        return self._infos.get(transfer)

    def all(self) -> list[TransferInfo]:
        """Newest first (the order they became known in this session, reversed)."""
        return [self._infos[t] for t in reversed(self._order)]

    def speed(self, transfer: str) -> float:
        """Bytes per second now; 0 when idle or unknown."""
        info = self._infos.get(transfer)
        if info is None or not info.state.moving:
            return 0.0
        return info.speed

    # -- writing ------------------------------------------------------------------------------

    def set_client(self, client: KithClient | None, runner: TaskRunner | None) -> None:
        self._client, self._runner = client, runner
        if client is not None and runner is not None:
            runner.run(self._load(client), self.tr("Loading file transfers"))

    async def _load(self, client: KithClient) -> None:
        self.load(await client.transfers())

    def load(self, infos: Iterable[TransferInfo]) -> None:
        for info in infos:
            self.put(info)

    def put(self, info: TransferInfo) -> None:
        """Store an authoritative ``TransferInfo`` (from the client)."""
        known = info.transfer in self._infos
        self._infos[info.transfer] = info
        if not known:
            self._order.append(info.transfer)
            self.added.emit(info.transfer)
        self.changed.emit(info.transfer)

    def listen(self, events: EventBridge) -> None:
        events.subscribe(FileOffered, self._offered)
        events.subscribe(FileOffer, self._offer)
        events.subscribe(FileProgress, self._progress)
        events.subscribe(FileAccepted, self._accepted)
        events.subscribe(FilePaused, self._paused)
        events.subscribe(FileResumed, self._resumed)
        events.subscribe(FileComplete, self._complete)
        events.subscribe(FileFailed, self._failed)
        events.subscribe(FileDeclined, self._declined)
        events.subscribe(FileCancelled, self._cancelled)
        events.subscribe(FileDeposited, self._deposited)

    def _offered(self, event: FileOffered) -> None:
        if event.transfer not in self._infos:
            room = self.is_room(event.to)
            self.put(TransferInfo(
                transfer=event.transfer, outgoing=True, peer_id="" if room else event.to,
                room_id=event.to if room else None,
                name=event.name_, size=event.size, hash=event.hash,
                state=TransferState.OFFERED, bytes=0, path=None, reason=None))
        self.refresh(event.transfer)

    def _offer(self, event: FileOffer) -> None:
        if event.transfer not in self._infos:
            self.put(TransferInfo(
                transfer=event.transfer, outgoing=False, peer_id=event.from_,
                room_id=event.room, name=event.name_, size=event.size, hash=event.hash,
                state=TransferState.OFFERED, bytes=0, path=None, reason=None))
        self.refresh(event.transfer)

    def _progress(self, event: FileProgress) -> None:
        self._update(event.transfer, self._progress_changes(event))

    def _accepted(self, event: FileAccepted) -> None:
        self._moved(event, refresh=True)

    def _paused(self, event: FilePaused) -> None:
        self._moved(event, bytes=event.bytes)

    def _resumed(self, event: FileResumed) -> None:
        self._moved(event)

    def _complete(self, event: FileComplete) -> None:
        info = self._infos.get(event.transfer)
        path = event.path or (info.path if info is not None else None)
        self._moved(event, refresh=info is None, path=path,
                    bytes=info.size if info is not None else 0)

    def _failed(self, event: FileFailed) -> None:
        self._moved(event, reason=event.reason)

    def _declined(self, event: FileDeclined) -> None:
        self._moved(event)

    def _cancelled(self, event: FileCancelled) -> None:
        self._moved(event)

    def _deposited(self, event: FileDeposited) -> None:
        self._moved(event, held_by=event.mailbox)

    def _moved(self, event: FileEvent, refresh: bool = False, **changes: Any) -> None:
        """The transfer is where ``event`` says it left it, with ``changes``."""
        self._update(event.transfer, {"state": event.transfer_state, **changes}, refresh=refresh)

    def _progress_changes(self, event: FileProgress) -> dict[str, Any]:
        changes: dict[str, Any] = {"bytes": event.bytes, "size": event.size,
                                   "speed": event.speed}
        info = self._infos.get(event.transfer)
        if info is not None and not info.outgoing and info.state is TransferState.OFFERED:
            changes["state"] = target(Step.ACCEPT, outgoing=False)  # bytes came: accepted
        return changes

    def _update(self, transfer: str, changes: dict[str, Any], refresh: bool = False) -> None:
        info = self._infos.get(transfer)
        if info is None:  # not loaded yet (an event raced the first snapshot): ask
            self.refresh(transfer)
            return
        self._versions[transfer] = self._versions.get(transfer, 0) + 1
        fields = {f.name for f in dataclasses.fields(info)}
        self._infos[transfer] = dataclasses.replace(
            info, **{k: v for k, v in changes.items() if k in fields})
        self.changed.emit(transfer)
        if refresh:
            self.refresh(transfer)

    def refresh(self, transfer: str) -> None:
        """Ask the client for the full record (one question per transfer at a time)."""
        client, runner = self._client, self._runner
        if client is None or runner is None or transfer in self._asking:
            return
        self._asking.add(transfer)
        runner.run(self._refresh(client, transfer), self.tr("Updating a file transfer"))

    async def _refresh(self, client: KithClient, transfer: str) -> None:
        version = self._versions.get(transfer, 0)
        try:
            info = await client.transfer(transfer)
        finally:
            self._asking.discard(transfer)
        if self._versions.get(transfer, 0) != version:
            self.refresh(transfer)  # an event arrived meanwhile: this answer may be older
        elif isinstance(info, TransferInfo):
            self.put(info)
