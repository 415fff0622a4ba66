"""Everything about files in the main window, wired in one place instead of through it.

The window owns one ``WindowFiles``: it keeps the ``TransferCache`` current, gives the
conversation's delegate its cards' data, makes the sidebar rows and the open conversation drop
targets, connects the composer's 📎 and paste (a pasted picture is shown first, with an
optional caption sent right after it), makes View ▸ Transfers, and repaints rows whose
transfer changed at most ten times a second (progress arrives four times a second per transfer;
several transfers at once must not repaint the list forty times). The download folder and
auto-accept live on the Files tab of File ▸ Settings… (Ctrl+,), not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QImage, QKeySequence

from app.core.records import ContactInfo, ContactState, RoomInfo, TransferInfo, short_peer_id
from ui.files.attach import FileSender
from ui.files.drop_target import DropTarget, FileDropFilter
from ui.files.file_actions import FileActions
from ui.files.paste_image import PasteImageDialog
from ui.files.transfer_cache import TransferCache
from ui.sidebar.model import (
    CONTACT_ROLE,
    KEY_ROLE,
    KIND_ROLE,
    ROOM_ROLE,
    SECTION_ROLE,
    RowKind,
    Section,
)

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import EventBridge
    from ui.files.transfers_panel import TransfersPanel
    from ui.window.frame import WindowFrame

REPAINT_MS = 100  # at most ten repaints a second for changed transfers
PANEL_WIDTH = 560


class WindowFiles(QObject):
    """File sending, cards and the transfers panel of one window."""

    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self.client: KithClient | None = None
        self.cache = TransferCache(self)
        self.cache.name_of = self.name_of
        self.cache.is_room = lambda key: window.sidebar.model.room(key) is not None
        self.actions = FileActions(self.cache, window.runner, window)
        self.file_sender = FileSender(window.runner, self)
        self.actions.failed.connect(window.show_error)
        self.file_sender.failed.connect(window.show_error)
        self.file_sender.sent.connect(self._file_sent)
        self.paste_dialog: PasteImageDialog | None = None
        self._captions: dict[str, tuple[str, str]] = {}  # pasted picture -> (to, caption)

        messages = window.conversation.messages
        cards = messages.delegate.cards
        cards.transfers = self.cache
        cards.name_of = self.name_of
        messages.file_action_requested.connect(self.actions.perform)
        composer = window.conversation.composer
        composer.attach_requested.connect(self.attach)
        composer.edit.files_pasted.connect(self.paste_files)
        composer.edit.image_pasted.connect(self.paste_image)

        self.sidebar_drop = FileDropFilter(
            window.sidebar.view.viewport(), self._sidebar_target, self._dropped)
        self.conversation_drop = FileDropFilter(
            messages.viewport(), self._conversation_target, self._dropped)

        self._dirty: set[str] = set()
        self._repaint = QTimer(self)
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(REPAINT_MS)
        self._repaint.timeout.connect(self._flush)
        self.cache.changed.connect(self._changed)

        self._panel: TransfersPanel | None = None  # made when first shown
        self._panel_shown = False
        self._build_actions()

    # -- menus --------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        window = self.window
        self.transfers_action = QAction(self.tr("&Transfers"), window)
        self.transfers_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.transfers_action.setCheckable(True)
        self.transfers_action.setToolTip(self.tr("File transfers (Ctrl+Shift+T)"))
        self.transfers_action.toggled.connect(self._toggle_panel)

    @property
    def panel(self) -> TransfersPanel:
        """The Transfers dock (View ▸ Transfers), made the first time it is asked for."""
        if self._panel is None:
            from ui.files.transfers_panel import TransfersPanel

            panel = TransfersPanel(self.cache, self.actions, self.window)
            self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
            panel.hide()
            panel.visibilityChanged.connect(self._panel_visibility)
            self._panel = panel
        return self._panel

    def _toggle_panel(self, on: bool) -> None:
        if on:
            first = not self._panel_shown
            self._panel_shown = True
            self.panel.show()
            if first:  # room for all five columns; the user's width wins afterwards
                self.window.resizeDocks([self.panel], [PANEL_WIDTH], Qt.Orientation.Horizontal)
            self.panel.raise_()
            self.panel.list.setFocus(Qt.FocusReason.ShortcutFocusReason)
        elif self._panel is not None:
            self._panel.hide()

    def _panel_visibility(self, visible: bool) -> None:
        if self.transfers_action.isChecked() != visible:
            self.transfers_action.setChecked(visible)

    # -- the client and its events ------------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        self.client = client
        self.actions.client = client
        self.file_sender.client = client
        self.cache.set_client(client, self.window.runner if client is not None else None)

    def listen(self, events: EventBridge) -> None:
        self.cache.listen(events)

    def name_of(self, key: str) -> str:
        """A peer's or a room's name as this window shows it."""
        model = self.window.sidebar.model
        contact = model.contact(key)
        if contact is not None:
            return contact.name
        room = model.room(key)
        return room.name if room is not None else short_peer_id(key)

    def _changed(self, transfer: str) -> None:
        self._dirty.add(transfer)
        if not self._repaint.isActive():
            self._repaint.start()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        model = self.window.conversation.model
        messages = self.window.conversation.messages
        for transfer in dirty:
            row = model.row_of(transfer)
            if row is not None:
                index = model.index(row)
                model.dataChanged.emit(index, index)
                messages.remeasure(index)
        if self._panel is not None:
            self._panel.refresh()

    # -- sending ------------------------------------------------------------------------------

    def _sidebar_target(self, pos: QPoint) -> DropTarget | None:
        view = self.window.sidebar.view
        index = view.indexAt(pos)
        if not index.isValid() or index.data(KIND_ROLE) != RowKind.ENTRY:
            return None
        key = str(index.data(KEY_ROLE))
        if index.data(SECTION_ROLE) == Section.ROOMS.value:
            room = index.data(ROOM_ROLE)
            name = room.name if isinstance(room, RoomInfo) else str(index.data())
        elif index.data(SECTION_ROLE) == Section.CONTACTS.value:
            contact = index.data(CONTACT_ROLE)
            if not isinstance(contact, ContactInfo) or contact.state is not ContactState.CONTACT:
                return None
            name = str(index.data())
        else:
            return None  # requests: accept them first
        return DropTarget(key, name, view.visualRect(index))

    def _conversation_target(self, _pos: QPoint) -> DropTarget | None:
        conversation = self.window.conversation
        key = conversation.conversation_key
        if key is None or self.client is None:
            return None
        contact, room = conversation.contact, conversation.room
        if contact is not None:
            if contact.state is not ContactState.CONTACT:
                return None
            return DropTarget(key, contact.name)
        return DropTarget(key, room.name) if room is not None else None

    def _dropped(self, target: DropTarget, paths: list[str]) -> None:
        self.file_sender.send(target.key, paths)

    def _open_target(self) -> DropTarget | None:
        return self._conversation_target(QPoint())

    def attach(self) -> None:
        """📎 / Ctrl+Shift+A: choose files for the open conversation."""
        target = self._open_target()
        if target is not None:
            self.file_sender.choose(target.key, target.name, self.window)

    def paste_files(self, paths: list[str]) -> None:
        target = self._open_target()
        if target is not None:
            self.file_sender.send(target.key, paths)

    def paste_image(self, image: QImage) -> PasteImageDialog | None:
        """A pasted picture: shown first, with an optional caption, then sent (or not)."""
        target = self._open_target()
        if target is None:
            return None
        if self.paste_dialog is not None:
            self.paste_dialog.deleteLater()
        dialog = PasteImageDialog(image, target.name, self.window)
        dialog.send_requested.connect(
            lambda picture, caption: self._send_pasted(target, picture, caption))
        self.paste_dialog = dialog
        dialog.open()
        return dialog

    def _send_pasted(self, target: DropTarget, image: QImage, caption: str) -> None:
        path = self.file_sender.save_pasted_image(image)
        if path is None:
            return
        if caption:  # said right after the picture, once it is on its way
            self._captions[path] = (target.key, caption)
        self.file_sender.send(target.key, [path])

    def _file_sent(self, info: TransferInfo) -> None:
        self.cache.put(info)
        waiting = self._captions.pop(info.path or "", None)
        if waiting is None:
            return
        key, caption = waiting
        room = self.window.sidebar.model.room(key) is not None
        self.window.call_client(self.tr("Sending the caption"), lambda client: (
            client.post(key, caption) if room else client.send(key, caption)))
