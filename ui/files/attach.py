"""Sending files from the window: dropped, attached with 📎 / Ctrl+Shift+A, or pasted.

Every way in ends in ``FileSender.send(to, paths)``: folders become their files (with relative
names, ``ui.files.drop_target.expand``), each file is checked for being readable before the client
hashes it, and every problem is said once in plain words through ``failed`` (the window shows
it in its banner) instead of disappearing into a log. A pasted image has no file yet: it is
written as a PNG into a private temporary folder first.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QWidget

from ui.files.drop_target import MAX_FILES, expand

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import TaskRunner


class FileSender(QObject):
    """Offers files to a peer or a room; ``sent(TransferInfo)`` per file, ``failed(text)``."""

    sent = Signal(object)
    failed = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.client: KithClient | None = None
        self.dialog: QFileDialog | None = None
        self._paste_dir: tempfile.TemporaryDirectory[str] | None = None

    def send(self, to: str, paths: list[str]) -> int:
        """Offer ``paths`` (files or folders) to ``to``; returns how many files were started."""
        client = self.client
        if client is None:
            self.failed.emit(self.tr("Files cannot be sent: Kith is not online."))
            return 0
        files = expand(paths)
        if len(files) > MAX_FILES:
            self.failed.emit(self.tr("That folder holds more than {n} files; send a smaller one "
                                     "or an archive of it.").format(n=MAX_FILES))
            return 0
        started = 0
        for path, name in files:
            shown = name or os.path.basename(path)
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                self.failed.emit(self.tr("“{name}” could not be sent: it cannot be read.")
                                 .format(name=shown))
                continue
            self.runner.run(self._send(client, to, path, name), self.tr("Sending a file"))
            started += 1
        if not files:
            self.failed.emit(self.tr("There was nothing to send: the folder is empty."))
        return started

    async def _send(self, client: KithClient, to: str, path: str, name: str | None) -> None:
        try:
            info = await client.send_file(to, path, name)
        except (ValueError, OSError) as exc:
            self.failed.emit(self.tr("“{name}” could not be sent: {reason}").format(
                name=name or os.path.basename(path), reason=exc))
            return
        self.sent.emit(info)

    def choose(self, to: str, name: str, parent: QWidget | None) -> QFileDialog:
        """📎: pick one or more files (non-modal, so the event loop keeps running)."""
        dialog = QFileDialog(parent, self.tr("Send Files to {name}").format(name=name))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda paths: self.send(to, list(paths)))
        dialog.finished.connect(lambda _: self._forget(dialog))
        if self.dialog is not None:
            self.dialog.close()  # one chooser at a time
        self.dialog = dialog
        dialog.open()
        return dialog

    def _forget(self, dialog: QFileDialog) -> None:
        """A chooser closed: it is deleted, so it must not be the one ``choose`` closes next."""
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def save_pasted_image(self, image: QImage) -> str | None:
        """Write a pasted image as a PNG in a temporary folder that lives as long as Kith."""
        if self._paste_dir is None:
            self._paste_dir = tempfile.TemporaryDirectory(prefix="kith-paste-")
        stamp = time.strftime("%Y-%m-%d %H.%M.%S")
        path = os.path.join(self._paste_dir.name, self.tr("Pasted image {when}.png").format(
            when=stamp))
        counter = 1
        while os.path.exists(path):
            counter += 1
            path = os.path.join(self._paste_dir.name, self.tr("Pasted image {when} ({n}).png")
                                .format(when=stamp, n=counter))
        if not image.save(path):  # PNG, from the suffix
            self.failed.emit(self.tr("The pasted image could not be saved for sending."))
            return None
        return path
