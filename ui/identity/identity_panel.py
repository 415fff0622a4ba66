"""The "You" card at the bottom of the sidebar: your invite, always one click from the clipboard.

Without an invite nobody can find you (there is no server to search), so the invite and its copy
button are always visible; the rest (name, status, peer id, listening addresses) folds out for
people who want to check what the network sees. View ▸ Your Identity… (Ctrl+I) shows it all.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import strip_p2p
from ui.identity.node_state import NodeState, Presence
from ui.identity.presence import PresenceIndicator
from ui.style import palette as pal
from ui.style.resources import tinted_icon
from ui.style.theme import set_style_sheet
from ui.widgets.elided_field import ElidedField

COPIED_FEEDBACK_MS = 1500


class IdentityPanel(QFrame):
    def __init__(self, state: NodeState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("identityPanel")
        self._state = state
        self._feedback = QTimer(self)
        self._feedback.setSingleShot(True)
        self._feedback.setInterval(COPIED_FEEDBACK_MS)
        self._feedback.timeout.connect(self._reset_copy_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 10, 14)
        layout.setSpacing(8)

        title_row = QHBoxLayout()
        title_row.setSpacing(4)
        self.title = QLabel(self.tr("Your invite"), self)
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        title_row.addWidget(self.title, 1)
        self.details_button = QToolButton(self)
        self.details_button.setAutoRaise(True)
        self.details_button.setAccessibleName(self.tr("Show or hide your identity details"))
        self.details_button.clicked.connect(lambda: self.set_expanded(not self.is_expanded()))
        title_row.addWidget(self.details_button)
        layout.addLayout(title_row)

        self.hint = QLabel(
            self.tr("Send this link to the people you want to talk to. It says who you are "
                    "and where to reach you."),
            self,
        )
        self.hint.setWordWrap(True)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = QFont(self.hint.font())
        small.setPointSizeF(small.pointSizeF() * 0.92)
        self.hint.setFont(small)
        layout.addWidget(self.hint)

        self.invite_edit = QLineEdit(self)
        self.invite_edit.setObjectName("invite")
        self.invite_edit.setReadOnly(True)
        self.invite_edit.setAccessibleName(self.tr("Your invite link"))
        self.invite_edit.setPlaceholderText(self.tr("Available once you are online"))
        layout.addWidget(self.invite_edit)
        self.copy_button = QPushButton(self)
        self.copy_button.setObjectName("primary")
        self.copy_button.setAccessibleName(self.tr("Copy your invite link"))
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.clicked.connect(self.copy_invite)
        layout.addWidget(self.copy_button)

        self.details = QWidget(self)
        form = QFormLayout(self.details)
        form.setContentsMargins(0, 6, 0, 0)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.name_label = QLabel(self.details)
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self._form_label(self.tr("Name")), self.name_label)
        self.presence = PresenceIndicator(self.details)
        form.addRow(self._form_label(self.tr("Status")), self.presence)
        self.peer_id_field = ElidedField(self.details)
        self.peer_id_field.setAccessibleName(self.tr("Your peer id"))
        form.addRow(self._form_label(self.tr("Peer id")), self.peer_id_field)
        form.addRow(self._form_label(self.tr("Listening on")))
        self.address_list = QListWidget(self.details)
        self.address_list.setObjectName("addresses")
        self.address_list.setAccessibleName(self.tr("Your listening addresses"))
        self.address_list.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.address_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.address_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.address_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        copy = QAction(self.tr("Copy"), self.address_list)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        copy.triggered.connect(self.copy_selected_addresses)
        self.address_list.addAction(copy)
        self.address_list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        form.addRow(self.address_list)
        layout.addWidget(self.details)

        self._tint()
        self._reset_copy_button()

        self._apply_style()
        state.changed.connect(self.refresh)
        self.set_expanded(False)
        self.refresh()

    def _apply_style(self) -> None:
        """Palette-derived style: an accent button and a quiet field, in light and dark mode."""
        palette = self.palette()
        accent = pal.accent(palette)
        set_style_sheet(
            self,
            f"""
            QPushButton#primary {{
                background: {accent.name()}; color: palette(highlighted-text);
                border: none; border-radius: 8px; padding: 7px 12px; font-weight: bold;
            }}
            QPushButton#primary:hover {{ background: {accent.lighter(112).name()}; }}
            QPushButton#primary:pressed {{ background: {accent.darker(112).name()}; }}
            QPushButton#primary:focus {{ border: 2px solid {accent.darker(150).name()}; }}
            QPushButton#primary:disabled {{
                background: {pal.hairline(palette).name()}; color: {pal.muted_text(palette).name()};
            }}
            QLineEdit#invite, QListWidget#addresses {{
                border: 1px solid {pal.hairline(palette).name()}; border-radius: 6px;
                padding: 4px 6px; background: {pal.sidebar_background(palette).name()};
            }}
            """
        )

    def _tint(self) -> None:
        palette = self.palette()
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        on_accent = palette.color(QPalette.ColorRole.HighlightedText)
        self._chevrons = (tinted_icon("chevron-up", muted), tinted_icon("chevron-down", muted))
        self._copy_icon = tinted_icon("copy", on_accent, muted)
        self._copied_icon = tinted_icon("check", on_accent)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: restyle
            self._apply_style()
            self._tint()
            copied = self._feedback.isActive()
            self.copy_button.setIcon(self._copied_icon if copied else self._copy_icon)
            self.set_expanded(self.is_expanded())

    def _form_label(self, text: str) -> QLabel:
        label = QLabel(text, self.details)
        label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        return label

    # -- state ------------------------------------------------------------------------------

    def refresh(self) -> None:
        state = self._state
        self.name_label.setText(state.display_name)
        self.presence.set_presence(state.presence, state.reachability)
        self.peer_id_field.set_full_text(state.peer_id)
        if self.invite_edit.text() != state.invite:
            self.invite_edit.setText(state.invite)
            self.invite_edit.setCursorPosition(0)
            self.invite_edit.setToolTip(state.invite)
        self.copy_button.setEnabled(bool(state.invite))
        addrs = list(state.addrs)
        if self.addresses() != addrs:
            self.address_list.clear()
            for addr in addrs:
                item = QListWidgetItem(strip_p2p(addr))  # the peer id is shown just above
                item.setData(Qt.ItemDataRole.UserRole, addr)
                item.setToolTip(addr)
                self.address_list.addItem(item)
        if not addrs:
            waiting = (
                self.tr("Not listening")
                if state.presence is Presence.OFFLINE
                else self.tr("Waiting for the network…")
            )
            self.address_list.setToolTip(waiting)
        rows = max(1, min(4, len(addrs)))
        row_height = max(self.address_list.sizeHintForRow(0), self.fontMetrics().height() + 4)
        self.address_list.setFixedHeight(rows * row_height + 2 * self.address_list.frameWidth() + 2)

    def addresses(self) -> list[str]:
        """The full addresses (ending in ``/p2p/<peer id>``), as copied."""
        return [
            str(self.address_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.address_list.count())
        ]

    def invite(self) -> str:
        return self.invite_edit.text()

    def peer_id(self) -> str:
        return self.peer_id_field.full_text()

    # -- actions ----------------------------------------------------------------------------

    def copy_invite(self) -> None:
        invite = self._state.invite
        if not invite:
            return
        QGuiApplication.clipboard().setText(invite)
        self.copy_button.setText(self.tr("Copied"))
        self.copy_button.setIcon(self._copied_icon)
        self._feedback.start()

    def _reset_copy_button(self) -> None:
        self.copy_button.setText(self.tr("Copy invite"))
        self.copy_button.setIcon(self._copy_icon)

    def copy_selected_addresses(self) -> None:
        selected = [
            str(item.data(Qt.ItemDataRole.UserRole)) for item in self.address_list.selectedItems()
        ]
        if selected:
            QGuiApplication.clipboard().setText("\n".join(selected))

    def is_expanded(self) -> bool:
        return not self.details.isHidden()

    def set_expanded(self, expanded: bool) -> None:
        self.details.setVisible(expanded)
        self.details_button.setIcon(self._chevrons[1] if expanded else self._chevrons[0])
        self.details_button.setToolTip(
            self.tr("Hide details") if expanded else self.tr("Show details")
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pal.hairline(self.palette()))
        painter.setBrush(pal.card_background(self.palette()))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 10, 10)
