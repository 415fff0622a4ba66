"""The main window's widgets and where they sit, and moving between conversations.

Left: you (``ProfileHeader``), the ``Sidebar``, people nearby, your invite (``IdentityPanel``).
Centre: the error banner, the bar over a message request, the conversation and, for rooms, the
member panel. ``WindowFrame`` builds these and keeps what belongs to the window as a whole: its
title (with the unread count), the banner, the tray, About, and opening and closing
conversations. Everything else is added by ``MainWindow``: the menus and one part per concern
(``WindowContacts``, ``WindowRooms``, ``WindowFiles``, ``WindowSearch``, ``WindowSettings``).
Those parts know the window as this class, so none of them imports the window that builds them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.core.markdown import escape_html
from app.core.records import ContactInfo, ContactState
from ui.bridge import TaskRunner
from ui.conversation.request_bar import RequestBar
from ui.conversation.view import ConversationView
from ui.identity.identity_panel import IdentityPanel
from ui.identity.node_state import NodeState
from ui.identity.profile_header import ProfileHeader
from ui.rooms.member_panel import MemberPanel
from ui.sidebar.model import Section
from ui.sidebar.nearby_panel import NearbyPanel
from ui.sidebar.view import Sidebar
from ui.style import palette as pal
from ui.style.resources import app_icon, tinted_icon
from ui.widgets.error_banner import ErrorBanner
from ui.window.tray import Tray

if TYPE_CHECKING:
    from app.client import KithClient

SIDEBAR_WIDTH = 280
DEFAULT_SIZE = QSize(1100, 720)


class _SidebarPane(QWidget):
    """The left column, one shade off the content so the two panes read apart in any theme."""

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), pal.sidebar_background(self.palette()))
        painter.setPen(pal.hairline(self.palette()))
        painter.drawLine(self.width() - 1, 0, self.width() - 1, self.height())


class WindowFrame(QMainWindow):
    """The window's widgets, title, banner and tray, and which conversation is open.

    ``conversation_changed`` after a conversation was opened or closed (``conversation`` says
    which); ``palette_changed`` when light and dark switched, so parts re-tint their icons;
    ``closed`` when the window closes (the controller then shuts the network down in order).
    """

    closed = Signal()
    conversation_changed = Signal()
    palette_changed = Signal()

    def __init__(self, state: NodeState, runner: TaskRunner | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.runner = runner if runner is not None else TaskRunner(self)
        self.client: KithClient | None = None
        self.unread_total = 0
        self.title_note = ""  # e.g. "(demo)": said in the title so two windows are told apart
        self.keep_in_tray = False  # Settings: closing the window keeps Kith running in the tray
        self._quitting = False
        self.setWindowIcon(app_icon())
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(QSize(720, 480))
        self._about: QMessageBox | None = None
        self._build_actions()
        self._build_body()
        self.tray = Tray(self.isActiveWindow, self, self.quit_action)
        self.tray.open_requested.connect(self.bring_forward)
        state.changed.connect(self._refresh_title)
        state.failed.connect(self.show_error)
        self._refresh_title()

    # -- construction -----------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.quit_action = QAction(self.tr("&Quit"), self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.quit)

        self.copy_invite_action = QAction(self.tr("&Copy Your Invite"), self)
        self.copy_invite_action.setShortcut(QKeySequence("Ctrl+Shift+C"))

        self.about_action = QAction(self.tr("&About Kith"), self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        self._tint()
        self.palette_changed.connect(self._tint)

    def _tint(self) -> None:
        text = self.palette().color(QPalette.ColorRole.WindowText)
        self.copy_invite_action.setIcon(tinted_icon("copy", text))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self.palette_changed.emit()

    def _build_body(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setChildrenCollapsible(False)
        splitter.setHandleWidth(1)

        left = _SidebarPane(splitter)
        left.setMinimumWidth(240)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 12)
        left_layout.setSpacing(8)
        self.header = ProfileHeader(self.state, left)
        left_layout.addWidget(self.header)
        self.sidebar = Sidebar(left)
        self.sidebar.activated.connect(self._on_sidebar_activated)
        left_layout.addWidget(self.sidebar, 1)
        self.nearby = NearbyPanel(left)
        left_layout.addWidget(self.nearby)
        self.identity_panel = IdentityPanel(self.state, left)
        self.copy_invite_action.triggered.connect(self.identity_panel.copy_invite)
        panel_box = QVBoxLayout()
        panel_box.setContentsMargins(12, 0, 12, 0)
        panel_box.addWidget(self.identity_panel)
        left_layout.addLayout(panel_box)

        centre = QWidget(splitter)
        centre.setBackgroundRole(QPalette.ColorRole.Base)
        centre.setAutoFillBackground(True)
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        self.banner = ErrorBanner(centre)
        banner_box = QVBoxLayout()  # margins only while the banner shows
        banner_box.setContentsMargins(0, 0, 0, 0)
        banner_box.addWidget(self.banner)
        centre_layout.addLayout(banner_box)
        self.banner.dismissed.connect(lambda: banner_box.setContentsMargins(0, 0, 0, 0))
        self._banner_box = banner_box

        self.conversation = ConversationView(self.runner, centre)
        # The decision about a message request sits under the header that says who it is from.
        self.request_bar = RequestBar(self.conversation)
        self._request_box = self.conversation.below_header()
        self._request_box.addWidget(self.request_bar)
        self._set_request_margins(False)
        self.conversation.read.connect(self.mark_read)
        self.member_panel = MemberPanel(centre)
        self.member_panel.hide()
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        body.addWidget(self.conversation, 1)
        body.addWidget(self.member_panel)
        centre_layout.addLayout(body, 1)

        splitter.addWidget(left)
        splitter.addWidget(centre)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, DEFAULT_SIZE.width() - SIDEBAR_WIDTH])
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self._set_tab_order()

    def _set_request_margins(self, shown: bool) -> None:
        if shown:
            self._request_box.setContentsMargins(16, 12, 16, 0)
        else:
            self._request_box.setContentsMargins(0, 0, 0, 0)

    def _set_tab_order(self) -> None:
        """Tab walks the way people read the window, round and round: find, pick, read, attach,
        write, send; then the conversation's header (a room's members and invite), the member
        list, your invite card and your identity. "+" beside the search box is Ctrl+N."""
        panel = self.identity_panel
        self.sidebar.add_button.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        composer = self.conversation.composer
        header = self.conversation.header
        self.tab_chain: list[QWidget] = [
            self.sidebar.search,
            self.sidebar.view,
            self.request_bar.accept_button,
            self.request_bar.block_button,
            self.conversation.messages,
            composer.attach_button,
            composer.edit,
            composer.send_button,
            header,
            header.members_button,
            header.invite_button,
            self.member_panel.list,
            panel.details_button,
            panel.invite_edit,
            panel.copy_button,
            panel.peer_id_field,
            panel.address_list,
            self.header.you_button,
        ]
        for first, second in itertools.pairwise(self.tab_chain):
            self.setTabOrder(first, second)

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab and Shift+Tab follow ``tab_chain`` round and round, skipping what is hidden or
        disabled. Qt's own chain, rearranged pair by pair, closed into a small loop through
        the composer (the conversation hands its focus on to it) and never came back to the
        search box. Widgets outside the chain (people nearby, the banner) keep Qt's order."""
        chain = [w for w in self.tab_chain if w.isVisible() and w.isEnabled()
                 and w.focusPolicy() & Qt.FocusPolicy.TabFocus]
        current = QApplication.focusWidget()
        if not chain or current not in chain:
            return super().focusNextPrevChild(next)
        step = 1 if next else -1
        target = chain[(chain.index(current) + step) % len(chain)]
        target.setFocus(Qt.FocusReason.TabFocusReason if next
                        else Qt.FocusReason.BacktabFocusReason)
        return True

    # -- the client -------------------------------------------------------------------------

    def call_client(self, what: str,
                    call: Callable[[KithClient], Coroutine[Any, Any, object]]) -> None:
        """Run ``call(client)`` in the background; failures, and being offline, go to the
        banner as "<what> failed: ..."."""
        client = self.client
        if client is None:
            self.show_error(self.tr("{what} failed: Kith is not online.").format(what=what))
            return
        self.runner.run(call(client), what)

    # -- conversations ----------------------------------------------------------------------

    def _on_sidebar_activated(self, section: str, key: str) -> None:
        if section in (Section.CONTACTS.value, Section.REQUESTS.value):
            self.open_peer(key)
        elif section == Section.ROOMS.value:
            self.open_room(key)

    def open_room(self, room_id: str) -> bool:
        """Open a room's conversation; False if unknown."""
        info = self.sidebar.model.room(room_id)
        if info is None:
            return False
        self.sidebar.select_peer(room_id)
        if self.conversation.current_room != room_id:
            self.conversation.open_room(info)
        self.request_bar.clear()
        self._set_request_margins(False)
        self.conversation.composer.setEnabled(True)
        self.conversation_changed.emit()
        return True

    def open_peer(self, peer_id: str) -> bool:
        """Open the conversation with a contact or a request; False if we do not know them."""
        info = self.sidebar.model.contact(peer_id)
        if info is None or info.state is ContactState.BLOCKED:
            return False
        self.sidebar.select_peer(peer_id)
        if self.conversation.current_peer != peer_id:
            self.conversation.open_contact(info)
        self.show_request_bar(info)
        self.conversation_changed.emit()
        return True

    def show_request_bar(self, info: ContactInfo) -> None:
        """Requests are read-only until accepted: the bar decides, the composer waits."""
        request = info.state is ContactState.REQUEST
        if request:
            self.request_bar.show_request(info)
        else:
            self.request_bar.clear()
        self._set_request_margins(request)
        self.conversation.composer.setEnabled(not request)

    def close_conversation(self) -> None:
        self.conversation.close_conversation()
        self.request_bar.clear()
        self._set_request_margins(False)
        self.sidebar.select_peer(None)
        self.conversation_changed.emit()

    def mark_read(self, key: str) -> None:
        """The conversation was read: a contact's messages or a room's posts."""
        if self.client is None:
            return
        if self.sidebar.model.room(key) is not None:
            self.runner.run(self.client.mark_room_read(key), self.tr("Marking posts read"))
        else:
            self.runner.run(self.client.mark_read(key), self.tr("Marking messages read"))

    def bring_forward(self, key: str = "") -> None:
        """From the tray or a notification: show the window, and that conversation or room."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()
        if key and not self.open_room(key):
            self.open_peer(key)

    # -- the window as a whole --------------------------------------------------------------

    def _refresh_title(self) -> None:
        title = self.tr("Kith — {name}").format(name=self.state.display_name)
        if self.unread_total:
            title = self.tr("({count}) {title}").format(count=self.unread_total, title=title)
        if self.title_note:
            title = f"{title} {self.title_note}"
        self.setWindowTitle(title)

    def set_title_note(self, note: str) -> None:
        self.title_note = note
        self._refresh_title()

    def set_unread(self, total: int) -> None:
        """Unread messages and posts in all conversations: in the title and the tray."""
        self.unread_total = total
        self.tray.set_unread(total)
        self._refresh_title()

    def show_error(self, message: str) -> None:
        """Show a problem in the banner (plain words; details are in the log)."""
        self._banner_box.setContentsMargins(16, 12, 16, 0)
        self.banner.show_message(message)

    def show_about(self) -> None:
        if self._about is None:
            box = QMessageBox(self)
            box.setWindowTitle(self.tr("About Kith"))
            box.setIconPixmap(app_icon().pixmap(64, 64))
            box.setTextFormat(Qt.TextFormat.RichText)
            box.setStandardButtons(QMessageBox.StandardButton.Close)
            self._about = box
        self._about.setText(
            "<h3>Kith {version}</h3><p>{body}</p>".format(
                version=escape_html(__version__),
                body=escape_html(
                    self.tr(
                        "Peer-to-peer chat and file sharing. There is no server: every Kith is "
                        "both client and server, and messages are end-to-end encrypted."
                    )
                ),
            )
        )
        self._about.open()

    def about_box(self) -> QMessageBox | None:
        return self._about

    def quit(self) -> None:
        """File ▸ Quit (Ctrl+Q), the tray's Quit: close for good, even with ``keep_in_tray``."""
        self._quitting = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keep_in_tray and self.tray.available and not self._quitting:
            event.ignore()  # Kith keeps running; the tray icon brings the window back
            self.conversation.save_draft()
            self.hide()
            return
        event.accept()
        self.tray.hide()
        self.closed.emit()
