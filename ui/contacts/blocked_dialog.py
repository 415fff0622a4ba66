"""The people you blocked, and the way back: blocked peers are never listed in the sidebar, so
this dialog is the only place to see them and unblock one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.records import ContactInfo, short_peer_id


class BlockedDialog(QDialog):
    """``unblock_requested(peer)``; the window refreshes it with ``set_blocked``."""

    unblock_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Blocked People"))
        self.setMinimumWidth(360)
        layout = QVBoxLayout(self)
        self.hint = QLabel(
            self.tr("Kith refuses connections and messages from these people. Unblocking "
                    "adds them back to your contacts."), self)
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.list = QListWidget(self)
        self.list.setAccessibleName(self.tr("Blocked people"))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.currentItemChanged.connect(lambda *_: self._update_button())
        self.list.itemActivated.connect(lambda *_: self._unblock())
        layout.addWidget(self.list)
        self.empty_label = QLabel(self.tr("You have not blocked anyone."), self)
        layout.addWidget(self.empty_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        button = self.buttons.addButton(self.tr("&Unblock"), QDialogButtonBox.ButtonRole.ActionRole)
        assert button is not None
        self.unblock_button: QPushButton = button
        self.unblock_button.clicked.connect(self._unblock)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.set_blocked([])

    def set_blocked(self, blocked: list[ContactInfo]) -> None:
        current = self.list.currentItem()
        keep = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.list.clear()
        for info in blocked:
            item = QListWidgetItem(f"{info.name}  ({short_peer_id(info.peer_id)})")
            item.setData(Qt.ItemDataRole.UserRole, info.peer_id)
            item.setToolTip(info.peer_id)
            self.list.addItem(item)
            if info.peer_id == keep:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self.list.setVisible(bool(blocked))
        self.empty_label.setVisible(not blocked)
        self._update_button()

    def peers(self) -> list[str]:
        return [str(self.list.item(i).data(Qt.ItemDataRole.UserRole))
                for i in range(self.list.count())]

    def _update_button(self) -> None:
        self.unblock_button.setEnabled(self.list.currentItem() is not None)

    def _unblock(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.unblock_requested.emit(str(item.data(Qt.ItemDataRole.UserRole)))
