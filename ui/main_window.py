"""The main window: sidebar (you, search, rooms and contacts, your invite) and the conversation.

It only arranges widgets and routes between them; what the network says arrives through
``NodeState`` (fed by the controller from client events), and closing the window only emits
``closed`` so the controller can shut the network down in order.
"""

from __future__ import annotations

import html
import itertools

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from ui import palette as pal
from ui.composer import Composer
from ui.conversation import ConversationView
from ui.error_banner import ErrorBanner
from ui.identity_panel import IdentityPanel
from ui.node_state import NodeState
from ui.profile_header import ProfileHeader
from ui.resources import app_icon, tinted_icon
from ui.sidebar import Section, Sidebar

SIDEBAR_WIDTH = 280
DEFAULT_SIZE = QSize(1100, 720)


class _SidebarPane(QWidget):
    """The left column, one shade off the content so the two panes read apart in any theme."""

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), pal.sidebar_background(self.palette()))
        painter.setPen(pal.hairline(self.palette()))
        painter.drawLine(self.width() - 1, 0, self.width() - 1, self.height())


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, state: NodeState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setWindowIcon(app_icon())
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(QSize(720, 480))
        self._about: QMessageBox | None = None
        self._build_actions()
        self._build_menus()
        self._build_body()
        state.changed.connect(self._refresh_title)
        state.failed.connect(self.show_error)
        self._refresh_title()

    # -- construction -----------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.quit_action = QAction(self.tr("&Quit"), self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)

        self.identity_action = QAction(self.tr("Your &Invite and Identity"), self)
        self.identity_action.setShortcut(QKeySequence("Ctrl+I"))
        self.identity_action.setCheckable(True)
        self.identity_action.setToolTip(self.tr("Your invite and identity (Ctrl+I)"))
        self.identity_action.toggled.connect(self._toggle_identity)

        self.copy_invite_action = QAction(self.tr("&Copy Your Invite"), self)
        self.copy_invite_action.setShortcut(QKeySequence("Ctrl+Shift+C"))

        self.search_action = QAction(self.tr("&Find Room or Contact"), self)
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.search_action.triggered.connect(self.focus_search)

        self.about_action = QAction(self.tr("&About Kith"), self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        self._tint()

    def _tint(self) -> None:
        text = self.palette().color(QPalette.ColorRole.WindowText)
        self.identity_action.setIcon(tinted_icon("user", text))
        self.copy_invite_action.setIcon(tinted_icon("copy", text))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self._tint()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu(self.tr("&File"))
        file_menu.addAction(self.copy_invite_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = self.menuBar().addMenu(self.tr("&View"))
        view_menu.addAction(self.search_action)
        view_menu.addAction(self.identity_action)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        help_menu.addAction(self.about_action)

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
        self.header.set_you_action(self.identity_action)
        left_layout.addWidget(self.header)
        self.sidebar = Sidebar(left)
        self.sidebar.activated.connect(self.open_conversation)
        left_layout.addWidget(self.sidebar, 1)
        self.identity_panel = IdentityPanel(self.state, left)
        self.identity_panel.expanded_changed.connect(self.identity_action.setChecked)
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

        self.conversation_title = QLabel(centre)
        font = self.conversation_title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.conversation_title.setFont(font)
        self.conversation_title.setContentsMargins(20, 14, 20, 12)
        self.conversation_title.setTextFormat(Qt.TextFormat.PlainText)
        self.conversation_title.hide()
        centre_layout.addWidget(self.conversation_title)
        self.conversation = ConversationView(centre)
        centre_layout.addWidget(self.conversation, 1)

        self.composer = Composer(centre)
        composer_box = QVBoxLayout()
        composer_box.setContentsMargins(16, 8, 16, 16)
        composer_box.addWidget(self.composer)
        centre_layout.addLayout(composer_box)

        splitter.addWidget(left)
        splitter.addWidget(centre)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, DEFAULT_SIZE.width() - SIDEBAR_WIDTH])
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self._set_tab_order()

    def _set_tab_order(self) -> None:
        """Tab walks the way people read the window: find, pick, write, then your invite."""
        panel = self.identity_panel
        chain = [
            self.sidebar.search,
            self.sidebar.view,
            self.composer.edit,
            self.composer.send_button,
            panel.details_button,
            panel.invite_edit,
            panel.copy_button,
            panel.peer_id_field,
            panel.address_list,
            self.header.you_button,
        ]
        for first, second in itertools.pairwise(chain):
            self.setTabOrder(first, second)

    # -- behaviour --------------------------------------------------------------------------

    def _refresh_title(self) -> None:
        self.setWindowTitle(self.tr("Kith — {name}").format(name=self.state.display_name))

    def show_error(self, message: str) -> None:
        """Show a problem in the banner (plain words; details are in the log)."""
        self._banner_box.setContentsMargins(16, 12, 16, 0)
        self.banner.show_message(message)

    def focus_search(self) -> None:
        self.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.sidebar.search.selectAll()

    def _toggle_identity(self, on: bool) -> None:
        self.identity_panel.set_expanded(on)
        if on:
            self.identity_panel.copy_button.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def open_conversation(self, section: str, key: str) -> None:
        """Point the composer at a room or contact picked in the sidebar."""
        names = dict(self.sidebar.model.entries(Section(section)))
        name = names.get(key, key)
        self.conversation_title.setText(name)
        self.conversation_title.show()
        self.composer.set_target(name)
        self.conversation.set_empty_state(
            self.tr("No messages yet"),
            self.tr("This is the start of your conversation with {name}. Say hello!").format(
                name=name
            ),
        )
        self.composer.edit.setFocus(Qt.FocusReason.OtherFocusReason)

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
                version=html.escape(__version__),
                body=html.escape(
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

    def closeEvent(self, event: QCloseEvent) -> None:
        event.accept()
        self.closed.emit()

