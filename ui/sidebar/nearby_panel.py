"""Nearby: Kith peers on the same network who are not your contacts yet, one click from a request.

LAN discovery (mDNS) announces peers as ``PeerNearby`` (name, LAN addresses) and withdraws them
as ``PeerGone``. Each shows its name and fingerprint, the same digits its owner sees on their
"Your identity" page, so two people in one room can check they picked the right one before
sending a request. Anyone already known (a contact, a request, a block) is left out: the
sidebar lists them. The panel hides itself while there is nobody to show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.events import ContactChanged, ContactRemoved, NodeStopped, PeerGone, PeerNearby
from app.core.fingerprint import fingerprint_for_peer, format_digits
from app.core.identity import InvalidPeerId
from app.core.records import short_peer_id
from ui.identity.reachability import as_tooltip
from ui.style.theme import set_style_sheet

if TYPE_CHECKING:
    from ui.bridge import EventBridge

MAX_HEIGHT = 230  # about three peers; more scroll


def fingerprint_lines(peer_id: str) -> str:
    """Their 30-digit half of the safety number as two lines of three groups (fits the
    sidebar's width)."""
    try:
        groups = format_digits(fingerprint_for_peer(peer_id)).split(" ")
    except (InvalidPeerId, ValueError):
        return ""
    return " ".join(groups[:3]) + "\n" + " ".join(groups[3:])


class NearbyRow(QFrame):
    """One nearby peer: name, their half of the safety number, and "Send request"."""

    request_clicked = Signal(str)

    def __init__(self, peer_id: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peer_id = peer_id
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 4, 10, 4)
        layout.setSpacing(8)
        text = QVBoxLayout()
        text.setSpacing(0)
        self.name_label = QLabel(self)
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        bold = QFont(self.name_label.font())
        bold.setBold(True)
        self.name_label.setFont(bold)
        text.addWidget(self.name_label)
        self.fingerprint_caption = QLabel(self.tr("Their half of the safety number:"), self)
        small = QFont(self.font())
        small.setPointSizeF(self.font().pointSizeF() * 0.85)
        self.fingerprint_caption.setFont(small)
        self.fingerprint_caption.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        text.addWidget(self.fingerprint_caption)
        self.fingerprint_label = QLabel(fingerprint_lines(peer_id), self)
        self.fingerprint_label.setTextFormat(Qt.TextFormat.PlainText)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(self.font().pointSizeF() * 0.85)
        self.fingerprint_label.setFont(mono)
        self.fingerprint_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.fingerprint_label.setAccessibleName(self.tr("Their half of the safety number"))
        self.fingerprint_label.setToolTip(as_tooltip(self.tr(
            "If this is really them, these digits match their half of the safety number on "
            "their View ▸ Your Identity page.")))
        self.fingerprint_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        text.addWidget(self.fingerprint_label)
        layout.addLayout(text, 1)
        self.request_button = QPushButton(self.tr("Send request"), self)
        self.request_button.setAutoDefault(False)
        self.request_button.clicked.connect(self._clicked)
        layout.addWidget(self.request_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.set_name(name)

    def set_name(self, name: str) -> None:
        self.name = name or short_peer_id(self.peer_id)
        self.name_label.setText(self.name)
        self.request_button.setToolTip(as_tooltip(self.tr(
            "Add {name} as a contact and say hello: they see it as a message request."
        ).format(name=self.name)))
        self.request_button.setAccessibleName(
            self.tr("Send {name} a contact request").format(name=self.name))
        self.setAccessibleName(self.tr("{name}, nearby").format(name=self.name))

    def set_sent(self, sent: bool) -> None:
        self.request_button.setEnabled(not sent)
        self.request_button.setText(self.tr("Sending…") if sent else self.tr("Send request"))

    def _clicked(self) -> None:
        self.set_sent(True)
        self.request_clicked.emit(self.peer_id)


class NearbyPanel(QWidget):
    """``request_requested(peer id)`` when "Send request" is clicked; ``peer(id)`` gives
    (name, LAN addresses) for it. ``is_known(peer id)`` (set by the window) hides contacts."""

    request_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.is_known: Callable[[str], bool] = lambda _peer: False
        self._peers: dict[str, tuple[str, tuple[str, ...]]] = {}  # in the order found
        self._rows: dict[str, NearbyRow] = {}
        self._sending: set[str] = set()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title = QLabel(self.tr("Nearby"), self)
        self.title.setContentsMargins(16, 6, 12, 0)
        font = QFont(self.title.font())  # the sidebar's section titles: "ROOMS", "CONTACTS"
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        font.setCapitalization(QFont.Capitalization.AllUppercase)
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 106)
        self.title.setFont(font)
        self.title.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.title.setToolTip(as_tooltip(self.tr(
            "Kith users on the same network as you, found by local network discovery "
            "(Settings ▸ Network). Compare fingerprints before sending a request.")))
        layout.addWidget(self.title)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        set_style_sheet(self.scroll_area, "QScrollArea { background: transparent; }")
        self.body = QWidget(self.scroll_area)
        self.rows_layout = QVBoxLayout(self.body)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(2)
        self.rows_layout.addStretch(1)
        self.scroll_area.setWidget(self.body)
        # setWidget turns the body's background on; the sidebar's shade must show through.
        self.body.setAutoFillBackground(False)
        self.scroll_area.viewport().setAutoFillBackground(False)
        layout.addWidget(self.scroll_area)
        self.setAccessibleName(self.tr("Nearby people"))
        self.hide()

    # -- what the node says -----------------------------------------------------------------

    def listen(self, events: EventBridge) -> None:
        events.subscribe(PeerNearby, self._found)
        events.subscribe(PeerGone, self._gone)
        events.subscribe(NodeStopped, self._stopped)
        events.subscribe(ContactChanged, self._contacts_changed)
        events.subscribe(ContactRemoved, self._contacts_changed)

    def _found(self, event: PeerNearby) -> None:
        self._peers[event.peer_id] = (event.name_, tuple(event.addrs))
        self.refresh()

    def _gone(self, event: PeerGone) -> None:
        self._peers.pop(event.peer_id, None)
        self._sending.discard(event.peer_id)
        self.refresh()

    def _stopped(self, _event: NodeStopped) -> None:
        self._peers.clear()
        self._sending.clear()
        self.refresh()

    def _contacts_changed(self, _event: ContactChanged | ContactRemoved) -> None:
        """A new contact leaves Nearby, a removed one may come back (``is_known`` says which)."""
        self.refresh()

    def peer(self, peer_id: str) -> tuple[str, tuple[str, ...]] | None:
        return self._peers.get(peer_id)

    def request_failed(self, peer_id: str) -> None:
        """The request did not go out: offer the button again."""
        self._sending.discard(peer_id)
        row = self._rows.get(peer_id)
        if row is not None:
            row.set_sent(False)

    # -- what is shown ----------------------------------------------------------------------

    def shown_peers(self) -> list[str]:
        """The peer ids listed, in order (for tests and screen readers)."""
        return list(self._rows)

    def row(self, peer_id: str) -> NearbyRow | None:
        return self._rows.get(peer_id)

    def refresh(self) -> None:
        """Rebuild the rows from what is nearby and not known yet; hide when empty."""
        wanted = [p for p in self._peers if not self.is_known(p)]
        for peer_id in [p for p in self._rows if p not in wanted]:
            gone = self._rows.pop(peer_id)
            self.rows_layout.removeWidget(gone)
            gone.deleteLater()
        for index, peer_id in enumerate(wanted):
            name = self._peers[peer_id][0]
            row = self._rows.get(peer_id)
            if row is None:
                row = NearbyRow(peer_id, name, self.body)
                row.request_clicked.connect(self._request)
                self._rows[peer_id] = row
                self.rows_layout.insertWidget(index, row)
            else:
                row.set_name(name)
            row.set_sent(peer_id in self._sending)
        self.setVisible(bool(self._rows))
        # As tall as the rows, up to about three; more scroll.
        self.body.adjustSize()
        rows = sum(r.sizeHint().height() for r in self._rows.values())
        spacing = self.rows_layout.spacing() * max(0, len(self._rows) - 1)
        self.scroll_area.setFixedHeight(min(MAX_HEIGHT, rows + spacing))

    def _request(self, peer_id: str) -> None:
        self._sending.add(peer_id)
        self.request_requested.emit(peer_id)
