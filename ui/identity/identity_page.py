"""View ▸ Your Identity…: who you are to the network, and moving that to another computer.

The page shows your half of every safety number a contact compares when verifying you (30
digits, in groups of five to read aloud) and what they need to add you (the invite, as text and
as a QR code to scan).
Export and import live here too: the exported file *is* your identity, so the dialogs ask for
a passphrase twice and say plainly what the file allows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.fingerprint import fingerprint_for_peer, format_digits
from app.store.backup import (
    MIN_PASSPHRASE,
    SUFFIX,
    BackupError,
    check_passphrase,
    export_profile,
    restore_into,
)
from app.store.profile import Profile
from ui.identity.node_state import NodeState
from ui.style import palette as pal
from ui.widgets.elided_field import ElidedField
from ui.widgets.qr import QrCode

if TYPE_CHECKING:
    from ui.bridge import TaskRunner

QR_SIDE = 220


def _error_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setObjectName("error")
    palette = label.palette()
    palette.setColor(label.foregroundRole(), pal.ERROR)
    label.setPalette(palette)
    label.hide()
    return label


class IdentityPage(QDialog):
    """Name, peer id, your half of the safety number, invite (Copy, QR); Export Profile… opens
    the export dialog."""

    export_requested = Signal()

    def __init__(self, state: NodeState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Your Identity"))
        self._state = state
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.name_label = QLabel(self)
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        bold = QFont(self.name_label.font())
        bold.setBold(True)
        self.name_label.setFont(bold)
        form.addRow(self.tr("Name:"), self.name_label)
        self.peer_id_field = ElidedField(self)
        self.peer_id_field.setAccessibleName(self.tr("Your peer id"))
        form.addRow(self.tr("Peer id:"), self.peer_id_field)
        self.fingerprint_label = QLabel(self)
        self.fingerprint_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.fingerprint_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.fingerprint_label.setAccessibleName(self.tr("Your half of the safety number"))
        form.addRow(self.tr("Your half of the\nsafety number:"), self.fingerprint_label)
        layout.addLayout(form)
        hint = QLabel(self.tr("The safety number a contact sees for you (under Details and "
                              "verification) is your half and theirs: these 30 digits are its "
                              "first or its second half. Comparing it is how they know a link "
                              "was not swapped."), self)
        hint.setWordWrap(True)
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(hint)

        invite_label = QLabel(self.tr("Your &invite:"), self)
        layout.addWidget(invite_label)
        row = QHBoxLayout()
        self.invite_edit = QLineEdit(self)
        self.invite_edit.setReadOnly(True)
        self.invite_edit.setAccessibleName(self.tr("Your invite link"))
        self.invite_edit.setPlaceholderText(self.tr("Available once you are online"))
        invite_label.setBuddy(self.invite_edit)
        row.addWidget(self.invite_edit, 1)
        self.copy_button = QPushButton(self.tr("&Copy"), self)
        self.copy_button.clicked.connect(self.copy_invite)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        self.qr = QrCode("", self)
        self.qr.setFixedSize(QR_SIDE, QR_SIDE)
        self.qr.setAccessibleName(self.tr("Your invite as a QR code"))
        layout.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignHCenter)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.export_button = QPushButton(self.tr("&Export Profile…"), self)
        self.buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.export_requested)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        state.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        state = self._state
        self.name_label.setText(state.display_name)
        self.peer_id_field.set_full_text(state.peer_id)
        try:
            fingerprint = format_digits(fingerprint_for_peer(state.peer_id))
        except ValueError:
            fingerprint = ""
        self.fingerprint_label.setText(fingerprint)
        if self.invite_edit.text() != state.invite:
            self.invite_edit.setText(state.invite)
            self.invite_edit.setCursorPosition(0)
            self.qr.set_payload(state.invite)
            self.qr.setAccessibleName(self.tr("Your invite as a QR code"))
        self.copy_button.setEnabled(bool(state.invite))

    def fingerprint(self) -> str:
        return self.fingerprint_label.text()

    def copy_invite(self) -> None:
        if self._state.invite:
            QGuiApplication.clipboard().setText(self._state.invite)
            self.copy_button.setText(self.tr("Copied"))


class _PassphraseDialog(QDialog):
    """Shared shape: an explanation, passphrase field(s), an inline error, OK and Cancel."""

    def __init__(self, title: str, text: str, confirm: bool, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(440)
        layout = QVBoxLayout(self)
        self.explain = QLabel(text, self)
        self.explain.setWordWrap(True)
        layout.addWidget(self.explain)
        self.form = QFormLayout()
        self.passphrase = QLineEdit(self)
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName(self.tr("Passphrase"))
        self.form.addRow(self.tr("&Passphrase:"), self.passphrase)
        self.confirm: QLineEdit | None = None
        if confirm:
            self.confirm = QLineEdit(self)
            self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
            self.confirm.setAccessibleName(self.tr("Passphrase again"))
            self.form.addRow(self.tr("&Again:"), self.confirm)
        layout.addLayout(self.form)
        self.error = _error_label(self)
        layout.addWidget(self.error)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.go)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.file_dialog: QFileDialog | None = None
        self.task: asyncio.Task[None] | None = None

    def show_error(self, message: str) -> None:
        self.status.clear()
        self.error.setText(message)
        self.error.show()
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.ok_button.setEnabled(not busy)
        self.passphrase.setEnabled(not busy)
        if self.confirm is not None:
            self.confirm.setEnabled(not busy)

    def go(self) -> None:
        raise NotImplementedError


class ExportProfileDialog(_PassphraseDialog):
    """Passphrase twice, then a save dialog, then the export off the interface thread."""

    exported = Signal(str)

    def __init__(self, profile_dir: Path, runner: TaskRunner, parent: QWidget | None = None
                 ) -> None:
        super().__init__(
            self.tr("Export Profile"),
            self.tr("The file holds your identity, contacts, rooms and history, encrypted with "
                    "this passphrase. Anyone with the file and the passphrase can be you: keep "
                    "both safe. There is no way to recover a forgotten passphrase."),
            True, parent)
        self.profile_dir = profile_dir
        self.runner = runner
        self.ok_button.setText(self.tr("Export…"))

    def check(self) -> str | None:
        """The passphrase if both fields agree and it is long enough; else says why inline."""
        text = self.passphrase.text()
        try:
            check_passphrase(text)
        except BackupError:
            self.show_error(self.tr("Use at least {count} characters.").format(
                count=MIN_PASSPHRASE))
            return None
        if self.confirm is not None and self.confirm.text() != text:
            self.show_error(self.tr("The two passphrases are not the same."))
            return None
        self.error.hide()
        return text

    def go(self) -> None:
        if self.check() is None:
            return
        dialog = QFileDialog(self, self.tr("Export Profile"))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter(self.tr("Kith backups (*{suffix})").format(suffix=SUFFIX))
        dialog.setDefaultSuffix(SUFFIX.lstrip("."))
        dialog.selectFile("kith-profile" + SUFFIX)
        dialog.fileSelected.connect(lambda name: self.export_to(Path(name)))
        dialog.finished.connect(lambda _: dialog.deleteLater())
        self.file_dialog = dialog
        dialog.open()

    def export_to(self, dest: Path) -> asyncio.Task[None] | None:
        passphrase = self.check()
        if passphrase is None:
            return None
        self._busy(True)
        self.status.setText(self.tr("Encrypting… (this takes a few seconds on purpose)"))
        self.task = self.runner.run(self._export(dest, passphrase), self.tr("Exporting"))
        return self.task

    async def _export(self, dest: Path, passphrase: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None, lambda: export_profile(self.profile_dir, dest, passphrase))
        except BackupError as exc:
            self.show_error(str(exc))
            return
        self.exported.emit(str(dest))
        self.accept()


class ImportProfileDialog(_PassphraseDialog):
    """Choose a backup file and its passphrase; imports into the (empty) open profile."""

    imported = Signal(str)

    def __init__(self, profile: Profile, runner: TaskRunner | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(
            self.tr("Import a Profile"),
            self.tr("Choose a file made with Export Profile… on your other computer and type "
                    "its passphrase. This computer becomes you: same identity, contacts, rooms "
                    "and history. Run only one of the two at a time."),
            False, parent)
        self.profile = profile
        self.runner = runner
        self.file_edit = QLineEdit(self)
        self.file_edit.setAccessibleName(self.tr("Backup file"))
        self.file_edit.setPlaceholderText(self.tr("kith-profile{suffix}").format(suffix=SUFFIX))
        self.choose_button = QPushButton(self.tr("C&hoose…"), self)
        self.choose_button.clicked.connect(self.choose_file)
        row = QHBoxLayout()
        row.addWidget(self.file_edit, 1)
        row.addWidget(self.choose_button)
        self.form.insertRow(0, self.tr("&File:"), row)
        self.ok_button.setText(self.tr("Import"))

    def choose_file(self) -> QFileDialog:
        dialog = QFileDialog(self, self.tr("Import a Profile"))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters([self.tr("Kith backups (*{suffix})").format(suffix=SUFFIX),
                               self.tr("All files (*)")])
        dialog.fileSelected.connect(self.file_edit.setText)
        dialog.finished.connect(lambda _: dialog.deleteLater())
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def go(self) -> None:
        name = self.file_edit.text().strip()
        if not name:
            self.show_error(self.tr("Choose the backup file first."))
            return
        if not self.passphrase.text():
            self.show_error(self.tr("Type the passphrase the backup was made with."))
            return
        self.error.hide()
        self._busy(True)
        self.status.setText(self.tr("Decrypting… (this takes a few seconds on purpose)"))
        coro = self._import(Path(name).expanduser(), self.passphrase.text())
        if self.runner is not None:
            self.task = self.runner.run(coro, self.tr("Importing"))
        else:
            self.task = asyncio.ensure_future(coro)

    async def _import(self, source: Path, passphrase: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            peer_id = await loop.run_in_executor(
                None, lambda: restore_into(self.profile, source, passphrase))
        except BackupError as exc:
            self.show_error(str(exc))
            return
        self.imported.emit(peer_id)
        self.accept()
