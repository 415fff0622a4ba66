"""The top of the sidebar: who you are and whether the network can reach you right now.

One status line (``PresenceIndicator``) says both whether Kith runs and how others reach you;
its tooltip says why. ``reach_label`` is that line's text.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QFont, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ui.identity.node_state import NodeState, Presence
from ui.identity.presence import PresenceIndicator
from ui.identity.reachability import as_tooltip, own_tooltip
from ui.widgets.avatar import Avatar


class ProfileHeader(QWidget):
    def __init__(self, state: NodeState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 16, 10, 10)
        layout.setSpacing(12)

        self.avatar = Avatar(state.display_name, 42, self)
        layout.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignVCenter)

        text = QVBoxLayout()
        text.setSpacing(1)
        self.name_label = QLabel(self)
        font = QFont(self.name_label.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.name_label.setFont(font)
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        text.addWidget(self.name_label)

        self.presence = PresenceIndicator(self)
        text.addWidget(self.presence)
        self.reach_label = self.presence.label()
        self.reach_label.setObjectName("reachability")
        self.peers_label = QLabel(self)
        text.addWidget(self.peers_label)
        layout.addLayout(text, 1)

        self.you_button = QToolButton(self)
        self.you_button.setAutoRaise(True)
        self.you_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.you_button.setIconSize(QSize(20, 20))
        layout.addWidget(self.you_button, 0, Qt.AlignmentFlag.AlignVCenter)

        self._muted()
        state.changed.connect(self.refresh)
        self.refresh()

    def set_you_action(self, action: QAction) -> None:
        """The action that shows your identity (Ctrl+I), so the mouse path matches the key."""
        self.you_button.setDefaultAction(action)

    def _muted(self) -> None:
        small = QFont(self.peers_label.font())
        small.setPointSizeF(small.pointSizeF() * 0.92)
        for label in (self.peers_label, self.reach_label):
            label.setFont(small)
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # follows theme changes

    def refresh(self) -> None:
        state = self._state
        self.name_label.setText(state.display_name)
        self.avatar.set_name(state.display_name)
        self.presence.set_presence(state.presence, state.reachability)
        self.peers_label.setText(state.connections_text())
        tip = own_tooltip(state.reachability, state.relays, state.reach_addrs,
                          state.presence is Presence.ONLINE)
        self.reach_label.setToolTip(as_tooltip(tip))
        self.reach_label.setAccessibleName(self.reach_label.text())
        self.reach_label.setAccessibleDescription(tip)
