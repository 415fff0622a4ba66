"""Ctrl+F: search every conversation as you type, and jump to a message in its conversation.

A panel that floats over the top of the window (``PopupPanel``, shared with the quick switcher):
a line edit and a list of hits. Typing restarts a short debounce; the query then runs in the
network thread through ``client.search`` (FTS5, newest first), and only the answer to the latest
query is shown, however the answers arrive. Up/Down/PageUp/PageDown move in the list without
leaving the line edit, Enter (or a click) opens the hit, Esc closes and gives focus back.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import datetime

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAbstractTextDocumentLayout, QKeyEvent, QPainter, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.core.records import MATCH_END, MATCH_START, SearchHit
from ui.bridge import TaskRunner

DEBOUNCE_MS = 120
PANEL_WIDTH = 620
HIT_ROLE = Qt.ItemDataRole.UserRole + 1

Searcher = Callable[[str], Awaitable[list[SearchHit]]]
ModelIndex = QModelIndex | QPersistentModelIndex

_MOVES = {
    Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_PageDown: 8, Qt.Key.Key_PageUp: -8,
}


def snippet_html(snippet: str) -> str:
    """The snippet as rich text: everything escaped, the matched words in bold."""
    out: list[str] = []
    rest = " ".join(snippet.split())  # one line: newlines and runs of spaces fold
    while rest:
        start = rest.find(MATCH_START)
        if start < 0:
            out.append(html.escape(rest))
            break
        end = rest.find(MATCH_END, start)
        if end < 0:
            end = len(rest)
        out.append(html.escape(rest[:start]))
        out.append(f"<b>{html.escape(rest[start + 1:end])}</b>")
        rest = rest[end + 1:]
    return "".join(out).replace(MATCH_START, "").replace(MATCH_END, "")


def hit_time(sent_at_ms: int, now: datetime | None = None) -> str:
    """"14:05" today, "3 Mar" this year, "3 Mar 2023" before."""
    when = datetime.fromtimestamp(sent_at_ms / 1000)
    now = now or datetime.now()
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if when.year == now.year:
        return f"{when.day} {when.strftime('%b')}"
    return f"{when.day} {when.strftime('%b %Y')}"


class PopupPanel(QFrame):
    """A panel floating over the top of its window: a line edit over a list.

    It closes on Esc, and when focus moves somewhere outside it; closing gives focus back to
    whatever had it before. Keys that move in the list work from the line edit.
    """

    closed = Signal()

    def __init__(self, parent: QWidget, placeholder: str, width: int = PANEL_WIDTH) -> None:
        super().__init__(parent)
        self._width = width
        self._previous_focus: QWidget | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(self.palette().ColorRole.Window)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        self.edit.installEventFilter(self)
        layout.addWidget(self.edit)
        self.status = QLabel(self)
        self.status.setForegroundRole(self.palette().ColorRole.PlaceholderText)
        self.status.hide()
        layout.addWidget(self.status)
        self.list = QListWidget(self)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay in the line edit
        self.list.setUniformItemSizes(True)
        self.list.itemActivated.connect(lambda _item: self.activate_current())
        self.list.itemClicked.connect(lambda _item: self.activate_current())
        layout.addWidget(self.list, 1)
        self.hide()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)

    def open(self) -> None:
        """Show over the window with the line edit focused and its text selected."""
        focus = QApplication.focusWidget()
        if focus is not None and not self.isAncestorOf(focus):
            self._previous_focus = focus
        self._place()
        self.show()
        self.raise_()
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def close_panel(self, restore_focus: bool = True) -> None:
        if not self.isVisible():
            return
        self.hide()
        previous, self._previous_focus = self._previous_focus, None
        if restore_focus and previous is not None:
            previous.setFocus(Qt.FocusReason.PopupFocusReason)
        self.closed.emit()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = min(self._width, max(280, parent.width() - 40))
        height = min(460, max(200, parent.height() - 120))
        top = 48 if parent.height() > 400 else 8
        self.setGeometry(QRect((parent.width() - width) // 2, top, width, height))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key == Qt.Key.Key_Escape:
                self.close_panel()
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.activate_current()
                return True
            if key in _MOVES:
                self.move_current(_MOVES[Qt.Key(key)])
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_panel()
            return
        super().keyPressEvent(event)

    def move_current(self, step: int) -> None:
        count = self.list.count()
        if not count:
            return
        row = self.list.currentRow()
        row = 0 if row < 0 else max(0, min(count - 1, row + step))
        self.list.setCurrentRow(row)

    def activate_current(self) -> None:
        """Open the selected entry (the first when none is selected)."""
        item = self.list.currentItem() or self.list.item(0)
        if item is None:
            return
        self.close_panel(restore_focus=False)
        self.activated_item(item)

    def activated_item(self, item: QListWidgetItem) -> None:
        """Subclasses say what opening an entry does."""

    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _focus_changed(self, _old: QWidget | None, now: QWidget | None) -> None:
        # Clicking or tabbing elsewhere in the window closes the panel, as a popup would.
        if self.isVisible() and now is not None and now is not self and not self.isAncestorOf(
                now) and now.window() is self.window():
            self.close_panel(restore_focus=False)


class HitDelegate(QStyledItemDelegate):
    """Two lines per hit: conversation · author and the time; the snippet, matches in bold."""

    def _lines(self, option: QStyleOptionViewItem) -> int:
        return option.fontMetrics.height()

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        return QSize(200, 2 * self._lines(option) + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        hit = index.data(HIT_ROLE)
        if not isinstance(hit, SearchHit):
            super().paint(painter, option, index)
            return
        painter.save()
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter,
                            option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = option.palette.ColorRole.HighlightedText if selected else \
            option.palette.ColorRole.Text
        rect = option.rect.adjusted(8, 6, -8, -6)
        line = self._lines(option)
        when = hit_time(hit.sent_at_ms)
        font = option.font
        bold = type(font)(font)
        bold.setBold(True)
        painter.setPen(option.palette.color(role))
        time_width = option.fontMetrics.horizontalAdvance(when) + 8
        head = QRect(rect.left(), rect.top(), rect.width() - time_width, line)
        painter.setFont(bold)
        title = f"{hit.conversation_name}  ·  {hit.author_name}"
        painter.drawText(head, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(title, Qt.TextElideMode.ElideRight,
                                                          head.width()))
        painter.setFont(font)
        painter.drawText(QRect(rect.right() - time_width, rect.top(), time_width, line),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, when)
        doc = QTextDocument()
        doc.setDefaultFont(font)
        doc.setDocumentMargin(0)
        doc.setHtml(snippet_html(hit.snippet))
        doc.setTextWidth(rect.width())
        painter.translate(rect.left(), rect.top() + line + 2)
        painter.setClipRect(QRect(0, 0, rect.width(), line + 2))
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(context.palette.ColorRole.Text, option.palette.color(role))
        doc.documentLayout().draw(painter, context)
        painter.restore()


class SearchPanel(PopupPanel):
    """Search all conversations; ``hit_activated`` carries the chosen ``SearchHit``."""

    hit_activated = Signal(object)

    def __init__(self, runner: TaskRunner, parent: QWidget) -> None:
        super().__init__(parent, self.tr("Search messages in every conversation"))
        self.setObjectName("searchPanel")
        self.edit.setAccessibleName(self.tr("Search messages"))
        self.list.setAccessibleName(self.tr("Search results"))
        self.list.setItemDelegate(HitDelegate(self.list))
        self.runner = runner
        self._searcher: Searcher | None = None
        self._generation = 0
        self._last_query: str | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.run_query)
        self.edit.textChanged.connect(lambda _text: self._timer.start())

    def set_searcher(self, searcher: Searcher | None) -> None:
        """``client.search`` while the network runs, None when it stopped."""
        self._searcher = searcher
        self._last_query = None

    def open(self) -> None:
        super().open()
        if self.edit.text().strip() and self._last_query != self.edit.text():
            self._timer.start()

    def hits(self) -> list[SearchHit]:
        return [self.list.item(r).data(HIT_ROLE) for r in range(self.list.count())]

    def run_query(self) -> None:
        """Search for the line edit's text now (the debounce timer calls this)."""
        self._timer.stop()
        text = self.edit.text()
        self._generation += 1
        self._last_query = text
        if not text.strip():
            self.list.clear()
            self.set_status("")
            return
        if self._searcher is None:
            self.set_status(self.tr("Search works once Kith is online."))
            return
        self.runner.run(self._search(self._generation, self._searcher, text),
                        self.tr("Searching"))

    async def _search(self, generation: int, searcher: Searcher, text: str) -> None:
        hits = await searcher(text)
        if generation != self._generation:
            return  # a newer query was typed meanwhile
        self.list.clear()
        for hit in hits:
            item = QListWidgetItem()
            item.setData(HIT_ROLE, hit)
            plain = snippet_html(hit.snippet)
            item.setData(Qt.ItemDataRole.AccessibleTextRole,
                         f"{hit.conversation_name}, {hit.author_name}: "
                         f"{html.unescape(plain.replace('<b>', '').replace('</b>', ''))}")
            self.list.addItem(item)
        if hits:
            self.list.setCurrentRow(0)
            self.set_status("")
        else:
            self.set_status(self.tr("No messages match “{text}”.").format(text=text.strip()))

    def activated_item(self, item: QListWidgetItem) -> None:
        hit = item.data(HIT_ROLE)
        if isinstance(hit, SearchHit):
            self.hit_activated.emit(hit)
