"""View ▸ Transfers: every file transfer of this profile, both directions, in one list.

Cards live in conversations, so a file offered in a room you are not looking at, or the one
still downloading while you read another chat, would otherwise be out of reach. The panel
reads the same ``TransferCache`` and offers the same actions (``ui.files.file_actions``) as the
cards: buttons for the selected transfer, Enter for its primary action, Delete to cancel or
decline, and a context menu with all of them.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSize, Qt
from PySide6.QtGui import QAction, QKeyEvent, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.records import TransferInfo
from app.core.transfer_state import TransferState
from ui.files.file_actions import (
    FileAction,
    FileActions,
    action_label,
    delete_action,
    is_transferring,
)
from ui.files.transfer_cache import TransferCache
from ui.files.transfer_text import duration_text, human_size, status_text

ID_ROLE = Qt.ItemDataRole.UserRole + 1
PERCENT_ROLE = Qt.ItemDataRole.UserRole + 2
PROGRESS_COLUMN = 2
MIN_WIDTH = 180


class _ProgressDelegate(QStyledItemDelegate):
    """The Progress column as the platform's progress bar, with "45% of 12 MB" on it."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        percent = index.data(PERCENT_ROLE)
        if not isinstance(percent, int):
            super().paint(painter, option, index)
            return
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum, bar.progress = 0, 100, percent
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 130), max(hint.height(), option.fontMetrics.height() + 12))


class _TransferList(QTreeWidget):
    """The table; Enter and Delete act on the current transfer."""

    def __init__(self, panel: TransfersPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            actions = self._panel.current_actions()
            if actions:
                self._panel.perform(actions[0])
            event.accept()
            return
        if event.key() == Qt.Key.Key_Delete:
            action = delete_action(self._panel.current_actions())
            if action is not None:
                self._panel.perform(action)
            event.accept()
            return
        super().keyPressEvent(event)


class TransfersPanel(QDockWidget):
    """A dock listing all transfers with name, who, progress, speed and state."""

    def __init__(self, cache: TransferCache, actions: FileActions,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Transfers"))
        self.setObjectName("transfersPanel")
        self.cache = cache
        self.file_actions = actions
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 4, 8, 8)
        self.stack = QStackedWidget(body)
        self.empty_label = QLabel(self.tr(
            "No file transfers yet. Drop files on a contact or a room to send them."), body)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.list = _TransferList(self)
        self.list.setAccessibleName(self.tr("File transfers"))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setHeaderLabels([self.tr("Name"), self.tr("With"), self.tr("Progress"),
                                   self.tr("Speed"), self.tr("State")])
        self.list.setItemDelegateForColumn(PROGRESS_COLUMN, _ProgressDelegate(self.list))
        header = self.list.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 170)
        for column in range(1, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.list)
        layout.addWidget(self.stack, 1)
        self.button_row = QHBoxLayout()
        self.button_row.addStretch(1)
        layout.addLayout(self.button_row)
        self.buttons: dict[FileAction, QPushButton] = {}
        self.setWidget(body)
        # Narrow is allowed (the columns scroll): beside an 800-pixel window the panel gets
        # what the sidebar and the conversation leave, not the other way round.
        self.setMinimumWidth(MIN_WIDTH)
        self.menu: QMenu | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        cache.added.connect(lambda _: self.refresh())
        self.refresh()

    # -- contents -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring every row up to date with the cache (new transfers on top)."""
        infos = self.cache.all()
        for position, info in enumerate(infos):
            item = self._items.get(info.transfer)
            if item is None:
                item = QTreeWidgetItem()
                item.setData(0, ID_ROLE, info.transfer)
                self._items[info.transfer] = item
                self.list.insertTopLevelItem(position, item)
            self._fill(item, info)
        self.stack.setCurrentWidget(self.list if infos else self.empty_label)
        first = self.list.topLevelItem(0)
        if self.list.currentItem() is None and first is not None:
            self.list.setCurrentItem(first)
        self._update_buttons()

    def _fill(self, item: QTreeWidgetItem, info: TransferInfo) -> None:
        where = info.room_id or info.peer_id
        who = self.cache.name_of(where)
        arrow = "↑" if info.outgoing else "↓"
        percent = int(100 * info.bytes / info.size) if info.size else (
            100 if info.state is TransferState.COMPLETE else 0)
        speed = self.cache.speed(info.transfer)
        texts = [
            f"{arrow} {info.name}", who,
            self.tr("{p}% of {size}").format(p=percent, size=human_size(info.size)),
            self.tr("{speed}/s").format(speed=human_size(speed))
            if is_transferring(info) and speed > 0 else "",
            self._state_text(info, speed),
        ]
        if item.data(PROGRESS_COLUMN, PERCENT_ROLE) != percent:
            item.setData(PROGRESS_COLUMN, PERCENT_ROLE, percent)
        for column, text in enumerate(texts):
            if item.text(column) != text:
                item.setText(column, text)
        item.setToolTip(0, info.name)

    def _state_text(self, info: TransferInfo, speed: float) -> str:
        """Short: the Progress and Speed columns already say how far and how fast."""
        if not is_transferring(info):
            return status_text(info, speed, self.cache.name_of(info.peer_id))
        if info.state is TransferState.PAUSED:
            return self.tr("Paused")
        if speed > 0:
            return duration_text((info.size - info.bytes) / speed)
        return self.tr("Sending") if info.outgoing else self.tr("Receiving")

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, with, state) per row, top first (what tests and screen readers read)."""
        out = []
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            if item is not None:
                out.append((item.text(0)[2:], item.text(1), item.text(4)))
        return out

    # -- actions ------------------------------------------------------------------------------

    def current_transfer(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(0, ID_ROLE)) if item is not None else None

    def current_actions(self) -> list[FileAction]:
        transfer = self.current_transfer()
        return self.file_actions.available(transfer) if transfer else []

    def select(self, transfer: str) -> None:
        item = self._items.get(transfer)
        if item is not None:
            self.list.setCurrentItem(item)

    def perform(self, action: FileAction) -> None:
        transfer = self.current_transfer()
        if transfer is not None:
            self.file_actions.perform(transfer, action.value)

    def _update_buttons(self) -> None:
        actions = self.current_actions()
        for action, button in list(self.buttons.items()):
            if action not in actions:
                self.button_row.removeWidget(button)
                button.deleteLater()
                del self.buttons[action]
        for action in actions:
            if action not in self.buttons:
                button = QPushButton(action_label(action), self)
                button.setObjectName(action.value)
                button.clicked.connect(lambda _=False, a=action: self.perform(a))
                self.buttons[action] = button
                self.button_row.addWidget(button)

    def _menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is not None:
            self.list.setCurrentItem(item)
        actions = self.current_actions()
        if not actions:
            return
        menu = QMenu(self)
        for action in actions:
            entry = QAction(action_label(action), menu)
            entry.setObjectName(action.value)
            entry.triggered.connect(lambda _=False, a=action: self.perform(a))
            menu.addAction(entry)
        if self.menu is not None:
            self.menu.deleteLater()
        self.menu = menu
        menu.popup(self.list.viewport().mapToGlobal(pos))

