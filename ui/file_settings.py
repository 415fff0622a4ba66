"""File ▸ File Settings…: where accepted files go, and which files arrive without asking.

Auto-accept exists for the common case of two people who verified each other sending small
files back and forth; it is off by default, limited by size, and only for verified contacts,
because accepting writes a stranger's bytes to your disk. The settings live in the profile
(the node applies them), so the dialog reads and writes them through the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ui.file_actions import default_download_dir

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import TaskRunner

MB = 1_000_000
MAX_AUTO_MB = 100_000


class FileSettingsDialog(QDialog):
    """Download folder (with a chooser) and "auto-accept from verified contacts up to N MB"."""

    def __init__(self, runner: TaskRunner, client: KithClient | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("File Settings"))
        self.runner = runner
        self.client: KithClient | None = None
        self.folder_dialog: QFileDialog | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.folder_edit = QLineEdit(self)
        self.folder_edit.setPlaceholderText(default_download_dir())
        self.folder_edit.setAccessibleName(self.tr("Download folder"))
        self.choose_button = QPushButton(self.tr("&Choose…"), self)
        self.choose_button.clicked.connect(self.choose_folder)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.choose_button)
        folder_label = QLabel(self.tr("&Download folder:"), self)
        folder_label.setBuddy(self.folder_edit)
        form.addRow(folder_label, row)
        self.auto_spin = QSpinBox(self)
        self.auto_spin.setRange(0, MAX_AUTO_MB)
        self.auto_spin.setSuffix(self.tr(" MB"))
        self.auto_spin.setSpecialValueText(self.tr("Off"))
        self.auto_spin.setAccessibleName(self.tr("Auto-accept limit"))
        auto_label = QLabel(self.tr("&Auto-accept from verified contacts up to:"), self)
        auto_label.setBuddy(self.auto_spin)
        form.addRow(auto_label, self.auto_spin)
        layout.addLayout(form)
        self.note = QLabel(self.tr(
            "Files from anyone else, and larger files, always wait for you to accept them."), self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.set_client(client)

    def set_client(self, client: KithClient | None) -> None:
        self.client = client
        online = client is not None
        for widget in (self.folder_edit, self.choose_button, self.auto_spin):
            widget.setEnabled(online)
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        if save is not None:
            save.setEnabled(online)
        if client is None:
            self.note.setText(self.tr("Kith is not online; settings can be changed once it is."))
        else:
            self.runner.run(self._load(client), self.tr("Loading the file settings"))

    async def _load(self, client: KithClient) -> None:
        folder, auto_bytes = await client.file_settings()
        if client is self.client:
            self.folder_edit.setText(folder)
            self.auto_spin.setValue(min(MAX_AUTO_MB, round(auto_bytes / MB)))

    def choose_folder(self) -> QFileDialog:
        dialog = QFileDialog(self, self.tr("Download Folder"))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setDirectory(self.folder_edit.text() or default_download_dir())
        dialog.fileSelected.connect(self.folder_edit.setText)
        dialog.finished.connect(lambda _: dialog.deleteLater())
        self.folder_dialog = dialog
        dialog.open()
        return dialog

    def save(self) -> None:
        client = self.client
        if client is None:
            self.reject()
            return
        folder = self.folder_edit.text().strip()
        self.runner.run(self._save(client, folder, self.auto_spin.value() * MB),
                        self.tr("Saving the file settings"))

    async def _save(self, client: KithClient, folder: str, auto_bytes: int) -> None:
        try:
            await client.set_file_settings(folder, auto_bytes)
        except (ValueError, OSError) as exc:
            self.note.setText(self.tr("Not saved: {reason}").format(reason=exc))
            return
        self.accept()
