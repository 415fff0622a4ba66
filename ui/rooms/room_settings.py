"""A governed room's settings: name, description, who may join, history and keys; its invite
links (make, copy, revoke) and the people asking to join (accept, refuse).

Owners and admins change everything here; other members see the settings read-only. Every
change goes through the client (the node checks the right again and writes the room's log),
and the dialog fills itself from ``client.room_overview`` whenever the log changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.records import short_peer_id
from app.core.room import MAX_DESCRIPTION, MAX_NAME
from ui.bridge import TaskRunner
from ui.widgets.link_dialog import plain_words

if TYPE_CHECKING:
    from app.client import KithClient

ID_ROLE = Qt.ItemDataRole.UserRole + 1
EXPIRIES = ((3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (0, "Never"))
JOIN_MODES = (("open", "Anyone with the room's link"),
              ("invite", "Only with an invite link"),
              ("approve", "An admin approves each join"))


class RoomSettingsDialog(QDialog):
    """Room ▸ Room Settings… for the open room."""

    def __init__(self, room_id: str, runner: TaskRunner, client: KithClient | None,
                 name_of: Callable[[str], str], room_name: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Room Settings"))
        self.setMinimumWidth(520)
        self.room_id = room_id
        self._runner = runner
        self._client = client
        self._name_of = name_of
        self._room_name = room_name
        self.overview: dict[str, Any] = {}
        layout = QVBoxLayout(self)

        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.status_label)

        form = QFormLayout()
        self.name_edit = QLineEdit(self)
        self.name_edit.setMaxLength(MAX_NAME)
        self.name_edit.setAccessibleName(self.tr("Room name"))
        form.addRow(self.tr("&Name"), self.name_edit)
        self.description_edit = QLineEdit(self)
        self.description_edit.setMaxLength(MAX_DESCRIPTION)
        self.description_edit.setAccessibleName(self.tr("Room description"))
        form.addRow(self.tr("&Description"), self.description_edit)
        self.join_combo = QComboBox(self)
        for mode, words in JOIN_MODES:
            self.join_combo.addItem(self.tr(words), mode)
        self.join_combo.setAccessibleName(self.tr("Who may join"))
        form.addRow(self.tr("&Who may join"), self.join_combo)
        self.history_box = QCheckBox(self.tr("New members can read &earlier messages"), self)
        form.addRow("", self.history_box)
        self.rotate_box = QCheckBox(
            self.tr("Start a new &key when someone leaves (they read nothing after)"), self)
        form.addRow("", self.rotate_box)
        layout.addLayout(form)
        self.save_button = QPushButton(self.tr("&Save Settings"), self)
        self.save_button.clicked.connect(self.save)
        layout.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignRight)

        invites = QGroupBox(self.tr("Invite links"), self)
        invites_layout = QVBoxLayout(invites)
        self.invite_list = QListWidget(invites)
        self.invite_list.setAccessibleName(self.tr("Invite links"))
        invites_layout.addWidget(self.invite_list)
        row = QHBoxLayout()
        self.expiry_combo = QComboBox(invites)
        for seconds, words in EXPIRIES:
            self.expiry_combo.addItem(self.tr(words), seconds)
        self.expiry_combo.setCurrentIndex(2)
        self.expiry_combo.setAccessibleName(self.tr("Expires after"))
        row.addWidget(QLabel(self.tr("Expires after"), invites))
        row.addWidget(self.expiry_combo)
        self.uses_spin = QSpinBox(invites)
        self.uses_spin.setRange(0, 10_000)
        self.uses_spin.setValue(1)
        self.uses_spin.setSpecialValueText(self.tr("any number"))
        self.uses_spin.setAccessibleName(self.tr("Uses"))
        row.addWidget(QLabel(self.tr("Uses"), invites))
        row.addWidget(self.uses_spin)
        self.create_button = QPushButton(self.tr("&New Invite Link"), invites)
        self.create_button.clicked.connect(self.create_invite)
        row.addWidget(self.create_button)
        invites_layout.addLayout(row)
        buttons = QHBoxLayout()
        self.copy_button = QPushButton(self.tr("&Copy Link"), invites)
        self.copy_button.clicked.connect(self.copy_invite)
        self.revoke_button = QPushButton(self.tr("&Revoke"), invites)
        self.revoke_button.clicked.connect(self.revoke_invite)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.revoke_button)
        invites_layout.addLayout(buttons)
        layout.addWidget(invites)

        requests = QGroupBox(self.tr("Asking to join"), self)
        requests_layout = QVBoxLayout(requests)
        self.request_list = QListWidget(requests)
        self.request_list.setAccessibleName(self.tr("People asking to join"))
        requests_layout.addWidget(self.request_list)
        answer = QHBoxLayout()
        self.accept_button = QPushButton(self.tr("&Accept"), requests)
        self.accept_button.clicked.connect(lambda: self.answer_request(True))
        self.refuse_button = QPushButton(self.tr("Re&fuse"), requests)
        self.refuse_button.clicked.connect(lambda: self.answer_request(False))
        answer.addStretch(1)
        answer.addWidget(self.accept_button)
        answer.addWidget(self.refuse_button)
        requests_layout.addLayout(answer)
        layout.addWidget(requests)
        self.requests_box = requests

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self._apply({})

    # -- filling ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the node again (the room's log changed)."""
        client = self._client
        if client is not None:
            self._runner.run(self._load(client), self.tr("Loading the room's settings"))

    async def _load(self, client: KithClient) -> None:
        self._apply(await client.room_overview(self.room_id))

    @property
    def manages(self) -> bool:
        return self.overview.get("role") in ("owner", "admin")

    def _apply(self, overview: dict[str, Any]) -> None:
        self.overview = overview
        settings = overview.get("settings") or {}
        if not overview.get("governed"):
            self.status_label.setText(self.tr(
                "This room has no owner: everyone with its link is in for good. Create a new "
                "room and tick “I manage this room” to choose who may join."))
        elif self.manages:
            self.status_label.setText(self.tr("You are {role} of this room.").format(
                role=self.tr("an owner") if overview.get("role") == "owner"
                else self.tr("an admin")))
        else:
            self.status_label.setText(self.tr(
                "Only the room's owners and admins change these settings."))
        self.name_edit.setText(str(settings.get("name", "")) or self._room_name)
        self.description_edit.setText(str(settings.get("description", "")))
        index = self.join_combo.findData(settings.get("join", "open"))
        self.join_combo.setCurrentIndex(max(index, 0))
        self.history_box.setChecked(bool(settings.get("history", True)))
        self.rotate_box.setChecked(bool(settings.get("rotate_on_leave", True)))
        for widget in (self.name_edit, self.description_edit, self.join_combo,
                       self.history_box, self.rotate_box, self.save_button,
                       self.create_button, self.expiry_combo, self.uses_spin,
                       self.revoke_button, self.accept_button, self.refuse_button):
            widget.setEnabled(self.manages)
        self.invite_list.clear()
        for invite in overview.get("invites", []):
            item = QListWidgetItem(self._invite_words(invite))
            item.setData(ID_ROLE, invite)
            self.invite_list.addItem(item)
        self.copy_button.setEnabled(self.invite_list.count() > 0)
        self.request_list.clear()
        for peer_id in overview.get("requests", []):
            item = QListWidgetItem(self._name_of(peer_id) or short_peer_id(peer_id))
            item.setData(ID_ROLE, peer_id)
            self.request_list.addItem(item)
        self.requests_box.setVisible(settings.get("join") == "approve"
                                     or self.request_list.count() > 0)

    def _invite_words(self, invite: dict[str, Any]) -> str:
        if invite.get("revoked"):
            state = self.tr("revoked")
        elif invite.get("uses") and invite.get("used", 0) >= invite["uses"]:
            state = self.tr("used up")
        elif invite.get("expires_ms") and invite["expires_ms"] < datetime.now().timestamp() * 1000:
            state = self.tr("expired")
        else:
            state = self.tr("live")
        uses = (self.tr("{used} of {uses} uses").format(used=invite.get("used", 0),
                                                          uses=invite["uses"])
                if invite.get("uses") else self.tr("{used} uses").format(
                    used=invite.get("used", 0)))
        expires = (self.tr("expires {when}").format(when=datetime.fromtimestamp(
            invite["expires_ms"] / 1000).strftime("%Y-%m-%d %H:%M"))
            if invite.get("expires_ms") else self.tr("never expires"))
        return f"{state} · {uses} · {expires} · {invite.get('invite_id', '')[:8]}"

    # -- acting -----------------------------------------------------------------------------

    def _run(self, what: str, call: Callable[[KithClient], Awaitable[Any]]) -> None:
        client = self._client
        if client is None:
            self.status_label.setText(self.tr("{what} failed: Kith is not online.").format(
                what=what))
            return

        async def act() -> None:
            try:
                await call(client)
            except ValueError as exc:
                self.status_label.setText(plain_words(str(exc)))
                return
            await self._load(client)

        self._runner.run(act(), what)

    def save(self) -> None:
        changes = {"description": self.description_edit.text().strip(),
                   "join": self.join_combo.currentData(),
                   "history": self.history_box.isChecked(),
                   "rotate_on_leave": self.rotate_box.isChecked()}
        if self.name_edit.text().strip():
            changes["name"] = self.name_edit.text().strip()
        self._run(self.tr("Saving the settings"),
                  lambda client: client.room_settings(self.room_id, changes))

    def create_invite(self) -> None:
        expires, uses = int(self.expiry_combo.currentData()), self.uses_spin.value()

        async def make(client: KithClient) -> None:
            link, _ = await client.create_invite(self.room_id, expires, uses)
            QGuiApplication.clipboard().setText(link)
            self.status_label.setText(self.tr(
                "A new invite link is copied. Whoever has it can join until it expires, is "
                "used up or you revoke it."))

        self._run(self.tr("Making an invite link"), make)

    def _current_invite(self) -> dict[str, Any] | None:
        item = self.invite_list.currentItem()
        data = item.data(ID_ROLE) if item is not None else None
        return data if isinstance(data, dict) else None

    def copy_invite(self) -> None:
        invite = self._current_invite()
        if invite is not None and invite.get("link"):
            QGuiApplication.clipboard().setText(str(invite["link"]))
            self.status_label.setText(self.tr("The invite link is copied."))

    def revoke_invite(self) -> None:
        invite = self._current_invite()
        if invite is None:
            return
        invite_id = str(invite.get("invite_id", ""))
        self._run(self.tr("Revoking the invite"),
                  lambda client: client.revoke_invite(self.room_id, invite_id))

    def answer_request(self, accept: bool) -> None:
        item = self.request_list.currentItem()
        if item is None:
            return
        peer_id = str(item.data(ID_ROLE))
        self._run(self.tr("Answering the request"),
                  lambda client: client.approve_join(self.room_id, peer_id, accept))
