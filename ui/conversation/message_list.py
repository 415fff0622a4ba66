"""The scrolling list of messages: opens at the newest, pages older ones in without a jump.

Chat reads bottom-up, so the view "sticks" to the bottom while the reader is there (new rows,
a resize or a re-wrap keep the newest message in sight) and otherwise stays put and counts what
arrived in a small "N new messages" pill. Reaching the top asks for an older page
(``near_top``); ``keep_anchor`` keeps the row the reader is looking at on the same pixel while
rows are inserted above it. While there are no rows, an empty state tells people what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QContextMenuEvent,
    QDesktopServices,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QFrame,
    QListView,
    QMenu,
    QStyleOptionViewItem,
    QWidget,
)

from app.core.records import Delivery
from ui.conversation.chat_item import ChatItem
from ui.conversation.links import is_kith_link
from ui.conversation.message_delegate import MessageDelegate
from ui.conversation.message_model import MessageListModel
from ui.files.file_actions import FileAction, action_label, delete_action
from ui.style import palette as pal
from ui.style.resources import app_icon

ICON_SIZE = 72
BOTTOM_SLACK = 8      # pixels from the end that still count as "at the bottom"
LOAD_MARGIN = 1.0     # viewports from the top that trigger loading an older page


class _NewMessagesPill(QAbstractButton):
    """"3 new messages ↓": floats over the bottom of the list while the reader is scrolled up."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # End / Ctrl+End is the keyboard path
        self.hide()

    def sizeHint(self) -> QSize:
        metrics = QFontMetrics(self._font())
        return QSize(metrics.horizontalAdvance(self.text()) + 28, metrics.height() + 14)

    def _font(self) -> QFont:
        font = QFont(self.font())
        font.setWeight(QFont.Weight.DemiBold)
        return font

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pal.mix(pal.accent(palette), palette.color(QPalette.ColorRole.Text),
                                 0.15 if self.isDown() else 0.0))
        painter.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
        painter.setFont(self._font())
        painter.setPen(palette.color(QPalette.ColorRole.HighlightedText))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.text())


class MessageListView(QListView):
    near_top = Signal()             # scrolled near the oldest loaded row: load an older page
    reached_bottom = Signal()       # the newest message came into view
    retry_requested = Signal(str)   # message key
    file_action_requested = Signal(str, str)  # transfer id, FileAction value
    kith_link_activated = Signal(str)  # a kith: contact or room link was clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)  # re-wrap on resize
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setMouseTracking(True)
        self.setAutoScroll(False)
        self.setAccessibleName(self.tr("Messages"))
        self.verticalScrollBar().setSingleStep(24)
        # Reply, React, Edit, Delete... for a message (``ui.conversation.message_actions``).
        self.item_actions: Callable[[QMenu, ChatItem], None] | None = None
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.delegate.link_activated.connect(self.open_link)
        self.delegate.retry_requested.connect(self.retry_requested)
        self.delegate.file_action_requested.connect(self.file_action_requested)
        self.pill = _NewMessagesPill(self)
        self.pill.clicked.connect(self.scroll_to_bottom)
        self._title = self.tr("No conversation open")
        self._hint = self.tr("Pick a contact or room on the left, or share your invite to start.")
        self._stick = True
        self._anchoring = False
        self._new = 0
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)

    def setModel(self, model: QAbstractItemModel | None) -> None:
        old = self.model()
        if isinstance(old, MessageListModel):
            old.rowsInserted.disconnect(self._rows_inserted)
            old.modelReset.disconnect(self._model_reset)
        super().setModel(model)
        if isinstance(model, MessageListModel):
            model.rowsInserted.connect(self._rows_inserted)
            model.modelReset.connect(self._model_reset)

    def message_model(self) -> MessageListModel | None:
        model = self.model()
        return model if isinstance(model, MessageListModel) else None

    # -- staying at the bottom, paging at the top --------------------------------------------------

    def is_at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - BOTTOM_SLACK

    def scroll_to_bottom(self) -> None:
        self._stick = True
        self.scrollToBottom()
        self._set_new(0)
        self.reached_bottom.emit()

    def pill_text(self) -> str:
        return self.pill.text() if self.pill.isVisible() else ""

    def _set_new(self, count: int) -> None:
        self._new = count
        if count <= 0:
            self.pill.hide()
            return
        self.pill.setText(
            self.tr("1 new message ↓") if count == 1
            else self.tr("{count} new messages ↓").format(count=count)
        )
        self._place_pill()
        self.pill.show()
        self.pill.raise_()

    def _place_pill(self) -> None:
        size = self.pill.sizeHint()
        viewport = self.viewport().geometry()
        self.pill.setGeometry(QRect(
            viewport.center().x() - size.width() // 2, viewport.bottom() - size.height() - 12,
            size.width(), size.height(),
        ))

    def _scrolled(self, value: int) -> None:
        if self._anchoring:
            return
        was = self._stick
        self._stick = self.is_at_bottom()
        if self._stick:
            self._set_new(0)
            if not was:
                self.reached_bottom.emit()
        if value <= self.viewport().height() * LOAD_MARGIN:
            self.near_top.emit()

    def _range_changed(self, _low: int, high: int) -> None:
        if self._stick and not self._anchoring:
            self.verticalScrollBar().setValue(high)

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        model = self.message_model()
        if model is None or self._anchoring or last != model.rowCount() - 1 or first == 0:
            return
        if not self._stick:
            incoming = sum(1 for row in range(first, last + 1) if not model.item(row).outgoing)
            if incoming:
                self._set_new(self._new + incoming)

    def _model_reset(self) -> None:
        self._stick = True
        self._set_new(0)

    @contextmanager
    def keep_anchor(self) -> Iterator[None]:
        """Rows inserted above inside this block leave the visible rows where they were."""
        self.executeDelayedItemsLayout()
        anchor = self.indexAt(QPoint(self.viewport().width() // 2, 1))
        model = self.message_model()
        key = model.item(anchor.row()).key if model is not None and anchor.isValid() else None
        before = self.visualRect(anchor).top() if anchor.isValid() else 0
        stick = self._stick
        self._anchoring = True
        try:
            yield
        finally:
            self.executeDelayedItemsLayout()
            if stick:
                self.scrollToBottom()
            elif model is not None and key is not None:
                moved = model.index_of(key)
                if moved.isValid():
                    shift = self.visualRect(moved).top() - before
                    bar = self.verticalScrollBar()
                    bar.setValue(bar.value() + shift)
            self._anchoring = False

    def remeasure(self, index: QModelIndex) -> None:
        """The row's height may have changed (a received picture now shows): lay out again if
        it did. QListView keeps the heights it measured; a change of data does not redo them."""
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        if self.delegate.sizeHint(option, index).height() != self.visualRect(index).height():
            self.scheduleDelayedItemsLayout()

    # -- selection and copying ----------------------------------------------------------------

    def selected_text(self) -> str:
        """The selected messages' text, oldest first, a blank line between them."""
        model = self.message_model()
        if model is None:
            return ""
        rows = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        return "\n\n".join(model.item(row).text for row in rows)

    def copy_selection(self) -> None:
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)

    def open_link(self, url: str) -> None:
        """A web link goes to the desktop's browser; a ``kith:`` link stays in Kith."""
        if is_kith_link(url):
            self.kith_link_activated.emit(url)
        else:
            QDesktopServices.openUrl(url)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            event.accept()
            return
        if self._file_key(event):
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.edit(self.currentIndex())  # the read-only text browser: select part, open links
            event.accept()
            return
        control = event.modifiers() & Qt.KeyboardModifier.ControlModifier
        if event.key() == Qt.Key.Key_End and control:
            self.scroll_to_bottom()
            event.accept()
            return
        super().keyPressEvent(event)

    def file_actions(self, index: QModelIndex) -> list[FileAction]:
        """What a file card row offers now (primary first); empty for other rows."""
        model = self.message_model()
        if model is None or not index.isValid():
            return []
        return self.delegate.cards.actions(model.item(index.row()))

    def _file_key(self, event: QKeyEvent) -> bool:
        """On a file card: Enter does its primary action, Delete cancels or declines."""
        index = self.currentIndex()
        model = self.message_model()
        if model is None or not index.isValid() or not model.item(index.row()).transfer:
            return False
        transfer = model.item(index.row()).transfer or ""
        actions = self.file_actions(index)
        action: FileAction | None = None
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            action = actions[0] if actions else None
        elif event.key() == Qt.Key.Key_Delete:
            action = delete_action(actions)
        else:
            return False
        if action is not None:
            self.file_action_requested.emit(transfer, action.value)
        return True

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        pos = event.position().toPoint()
        index = self.indexAt(pos)
        pointing = index.isValid() and (
            self.delegate.link_at(index, pos) is not None or self.delegate.retry_hit(index, pos)
            or self.delegate.cards.action_at(index, pos) is not None
            or self.delegate.cards.picture_at(index, pos)
        )
        self.viewport().setCursor(
            Qt.CursorShape.PointingHandCursor if pointing else Qt.CursorShape.ArrowCursor
        )

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.context_menu(event.pos()).popup(event.globalPos())

    def context_menu(self, pos: QPoint) -> QMenu:
        """The message actions (``item_actions``), Copy, Select Text, Copy Link (over a link),
        Retry (a failed message); for ``pos``."""
        menu = QMenu(self)
        index = self.indexAt(pos)
        model = self.message_model()
        if index.isValid() and model is not None and self.item_actions is not None:
            self.item_actions(menu, model.item(index.row()))
            menu.addSeparator()
        if index.isValid() and not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)
        copy = QAction(self.tr("&Copy"), menu)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setEnabled(self.selectionModel().hasSelection())
        copy.triggered.connect(self.copy_selection)
        menu.addAction(copy)
        if index.isValid() and model is not None and not model.item(index.row()).transfer:
            select = QAction(self.tr("&Select Text"), menu)  # Enter, or a double click
            select.setObjectName("select_text")
            select.triggered.connect(lambda: self.edit(index))
            menu.addAction(select)
        url = self.delegate.link_at(index, pos) if index.isValid() else None
        if url is not None:
            copy_link = QAction(self.tr("Copy &Link"), menu)
            copy_link.triggered.connect(lambda: QGuiApplication.clipboard().setText(url))
            menu.addAction(copy_link)
            open_link = QAction(self.tr("&Open Link"), menu)
            open_link.triggered.connect(lambda: self.open_link(url))
            menu.addAction(open_link)
        if index.isValid() and model is not None:
            item = model.item(index.row())
            if item.transfer:
                self._add_file_actions(menu, item.transfer, self.file_actions(index))
            elif item.outgoing and item.state is Delivery.FAILED:
                menu.addSeparator()
                retry = QAction(self.tr("&Retry Sending"), menu)
                retry.triggered.connect(lambda: self.retry_requested.emit(item.key))
                menu.addAction(retry)
        return menu

    def _add_file_actions(self, menu: QMenu, transfer: str, actions: list[FileAction]) -> None:
        if actions:
            menu.addSeparator()
        for action in actions:
            entry = QAction(action_label(action), menu)
            entry.setObjectName(action.value)
            entry.triggered.connect(
                lambda _=False, a=action: self.file_action_requested.emit(transfer, a.value))
            menu.addAction(entry)

    # -- look -----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange):
            self.delegate.invalidate()
            self.scheduleDelayedItemsLayout()
            self.viewport().update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            # QListView relays out on a change of height only (its flow direction), so rows
            # kept the heights measured at the old width: wrapped text overlapped the next
            # bubble or was cut. Measure again now, before the next paint.
            self.scheduleDelayedItemsLayout()
            self.executeDelayedItemsLayout()
        if self.pill.isVisible():
            self._place_pill()

    # -- the empty state ------------------------------------------------------------------------

    def set_empty_state(self, title: str, hint: str) -> None:
        """What to say while there are no messages (differs with and without a conversation)."""
        self._title, self._hint = title, hint
        self.viewport().update()

    def empty_text(self) -> str:
        return self._hint

    def empty_title(self) -> str:
        return self._title

    def is_empty(self) -> bool:
        model = self.model()
        return model is None or model.rowCount() == 0

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self.is_empty() or not (self._title or self._hint):
            return
        viewport = self.viewport().rect()
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()

        title_font = QFont(self.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.35)
        title_font.setBold(True)
        width = min(420, viewport.width() - 48)
        hint_rect = painter.fontMetrics().boundingRect(
            QRect(0, 0, width, 10_000),
            int(Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap),
            self._hint,
        )
        title_height = QFontMetrics(title_font).height()
        total = ICON_SIZE + 20 + title_height + 8 + hint_rect.height()
        top = viewport.center().y() - total // 2 - 20
        left = viewport.center().x() - width // 2

        painter.setOpacity(0.55)
        icon_left = viewport.center().x() - ICON_SIZE // 2
        app_icon().paint(painter, QRect(icon_left, top, ICON_SIZE, ICON_SIZE))
        painter.setOpacity(1.0)

        top += ICON_SIZE + 20
        painter.setFont(title_font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(
            QRect(left, top, width, title_height), Qt.AlignmentFlag.AlignCenter, self._title
        )
        top += title_height + 8
        painter.setFont(self.font())
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(
            QRect(left, top, width, hint_rect.height()),
            int(Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap),
            self._hint,
        )

    def sizeHint(self) -> QSize:
        return QSize(520, 400)
