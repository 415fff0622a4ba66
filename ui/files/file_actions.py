"""What can be done with a file transfer, and doing it: one place for cards, menus and the panel.

The card buttons, the conversation's context menu, its Enter/Delete keys and the transfers
panel all offer the same actions for the same state, so the rules live here once
(``actions_for``) and so does carrying them out (``FileActions.perform``), including the one
dialog (Save As…) and handing finished files to the desktop (Open, Show in Folder). When the
desktop has no program for a file, Open says so and offers to show it in its folder instead.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from enum import StrEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton, QWidget

from app.core.records import TransferInfo
from app.core.transfer_state import Step, TransferState, can
from app.store.profile import default_download_dir as profile_download_dir
from ui.files.file_kind import FileKind, file_kind

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import TaskRunner
    from ui.files.image_viewer import ImageViewer
    from ui.files.transfer_cache import TransferCache


class FileAction(StrEnum):
    VIEW = "view"        # a picture that is here, in Kith's own viewer
    ACCEPT = "accept"
    SAVE_AS = "save_as"
    DECLINE = "decline"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"
    OPEN = "open"
    SHOW = "show"


def is_transferring(info: TransferInfo) -> bool:
    """Bytes are moving (or paused part-way): the card shows a progress bar. An outgoing
    offer shows one once a part of it was served."""
    if info.state.started:
        return True
    return info.state is TransferState.OFFERED and 0 < info.bytes < info.size


def is_viewable(info: TransferInfo) -> bool:
    """A picture that is here: one we sent, or one received whole."""
    return (bool(info.path) and file_kind(info.name) is FileKind.IMAGE
            and (info.outgoing or info.state is TransferState.COMPLETE))


def actions_for(info: TransferInfo) -> list[FileAction]:
    """The steps the transfer may take now (``app.core.transfer_state``) that the user takes,
    the primary one first."""
    state, outgoing = info.state, info.outgoing
    view = [FileAction.VIEW] if is_viewable(info) else []
    if state is TransferState.COMPLETE:
        return [*view, FileAction.OPEN, FileAction.SHOW] if info.path else []
    if state.final:  # declined or cancelled: nothing left to do but look
        return view
    if outgoing:
        return view + ([FileAction.CANCEL] if can(state, Step.CANCEL, outgoing) else [])
    actions: list[FileAction] = []
    if can(state, Step.ACCEPT, outgoing):  # an offer, or a failed download tried again
        actions += ([FileAction.RETRY] if state is TransferState.FAILED
                    else [FileAction.ACCEPT, FileAction.SAVE_AS])
    if can(state, Step.RESUME, outgoing):
        actions.append(FileAction.RESUME)
    if can(state, Step.PAUSE, outgoing):
        actions.append(FileAction.PAUSE)
    if can(state, Step.DECLINE, outgoing):
        actions.append(FileAction.DECLINE)  # an offer is declined rather than cancelled
    elif can(state, Step.CANCEL, outgoing):
        actions.append(FileAction.CANCEL)
    return actions  # (an incoming file is viewable only once complete)


def delete_action(actions: list[FileAction]) -> FileAction | None:
    """What the Delete key does: cancel or decline, never anything else."""
    for action in (FileAction.CANCEL, FileAction.DECLINE):
        if action in actions:
            return action
    return None


def action_label(action: FileAction) -> str:
    labels = {
        FileAction.VIEW: QCoreApplication.translate("FileAction", "View"),
        FileAction.ACCEPT: QCoreApplication.translate("FileAction", "Accept"),
        FileAction.SAVE_AS: QCoreApplication.translate("FileAction", "Save As…"),
        FileAction.DECLINE: QCoreApplication.translate("FileAction", "Decline"),
        FileAction.PAUSE: QCoreApplication.translate("FileAction", "Pause"),
        FileAction.RESUME: QCoreApplication.translate("FileAction", "Resume"),
        FileAction.CANCEL: QCoreApplication.translate("FileAction", "Cancel"),
        FileAction.RETRY: QCoreApplication.translate("FileAction", "Try Again"),
        FileAction.OPEN: QCoreApplication.translate("FileAction", "Open"),
        FileAction.SHOW: QCoreApplication.translate("FileAction", "Show in Folder"),
    }
    return labels[action]


def default_download_dir() -> str:
    """Where accepted files go when Settings ▸ Files names no folder (the client's own default)."""
    return str(profile_download_dir())


class FileActions(QObject):
    """Carries out a ``FileAction`` through the client; problems come out of ``failed``."""

    failed = Signal(str)

    def __init__(self, cache: TransferCache, runner: TaskRunner,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.runner = runner
        self.client: KithClient | None = None
        self.save_dialog: QFileDialog | None = None
        self.no_program_box: QMessageBox | None = None  # "Nothing opens this file" (Open)
        self.viewer: ImageViewer | None = None

    def available(self, transfer: str) -> list[FileAction]:
        info = self.cache.get(transfer)
        return [] if info is None else actions_for(info)

    def perform(self, transfer: str, action: str) -> None:
        act = FileAction(action)
        info = self.cache.get(transfer)
        if info is None or act not in self.available(transfer):
            return
        if act in (FileAction.OPEN, FileAction.SHOW):
            self._open(info, act)
            return
        if act is FileAction.VIEW:
            self.view(info)
            return
        if act is FileAction.SAVE_AS:
            self.choose_folder(transfer)
            return
        client = self.client
        if client is None:
            self.failed.emit(self.tr("Kith is not online."))
            return
        what = action_label(act)
        if act in (FileAction.ACCEPT, FileAction.RETRY):
            self.runner.run(self._accept(client, transfer, ""), what)
        elif act is FileAction.DECLINE:
            self.runner.run(self._call(client.decline_file(transfer), what), what)
        elif act is FileAction.CANCEL:
            self.runner.run(self._call(client.cancel_file(transfer), what), what)
        elif act is FileAction.PAUSE:
            self.runner.run(self._call(client.pause_file(transfer), what), what)
        elif act is FileAction.RESUME:
            self.runner.run(self._call(client.resume_file(transfer), what), what)

    async def _call(self, call: Awaitable[object], what: str) -> None:
        try:
            await call
        except ValueError as exc:  # TransferError and friends: plain words
            self.failed.emit(self.tr("{what} failed: {reason}").format(what=what, reason=exc))

    async def _accept(self, client: KithClient, transfer: str, folder: str) -> None:
        """Accept into ``folder``; "" is the client's download folder (Settings ▸ Files)."""
        try:
            info = await client.accept_file(transfer, folder)
        except (ValueError, OSError) as exc:
            self.failed.emit(self.tr("The file could not be accepted: {reason}").format(
                reason=exc))
            return
        self.cache.put(info)

    def choose_folder(self, transfer: str) -> QFileDialog:
        """Save As…: pick a folder, then accept into it (non-modal: the loop keeps running)."""
        parent = self.parent()
        dialog = QFileDialog(parent if isinstance(parent, QWidget) else None,
                             self.tr("Save the File In"))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setDirectory(default_download_dir())
        dialog.fileSelected.connect(lambda folder: self.accept_into(transfer, folder))
        dialog.finished.connect(lambda _: dialog.deleteLater())
        if self.save_dialog is not None:
            self.save_dialog.close()
        self.save_dialog = dialog
        dialog.open()
        return dialog

    def accept_into(self, transfer: str, folder: str) -> None:
        client = self.client
        if client is None or not folder:
            return
        self.runner.run(self._accept(client, transfer, folder), self.tr("Accepting a file"))

    def _open(self, info: TransferInfo, action: FileAction) -> None:
        path = info.path or ""
        target = path if action is FileAction.OPEN else os.path.dirname(path)
        if not target or not os.path.exists(target):
            self.failed.emit(self.tr("“{name}” is no longer there.").format(name=info.name))
            return
        if QDesktopServices.openUrl(QUrl.fromLocalFile(target)):
            return
        if action is FileAction.OPEN:
            self._no_program(info)
        else:
            self.failed.emit(self.tr("The folder could not be shown; “{name}” is in {folder}")
                             .format(name=info.name, folder=target))

    def view(self, info: TransferInfo) -> ImageViewer | None:
        """The picture in Kith's viewer (Open and Show in Folder are a click away there)."""
        if not info.path or not os.path.exists(info.path):
            self.failed.emit(self.tr("“{name}” is no longer there.").format(name=info.name))
            return None
        if self.viewer is not None:
            self.viewer.close()
            self.viewer.deleteLater()
        from ui.files.image_viewer import ImageViewer  # when a picture is first viewed

        parent = self.parent()
        viewer = ImageViewer(info.path, info.name, parent if isinstance(parent, QWidget) else None)
        viewer.open_requested.connect(lambda: self._open(info, FileAction.OPEN))
        viewer.show_requested.connect(lambda: self._open(info, FileAction.SHOW))
        self.viewer = viewer
        viewer.open()
        return viewer

    def _no_program(self, info: TransferInfo) -> QMessageBox:
        """Open found no program for the file: say so, and offer its folder instead."""
        if self.no_program_box is not None:
            self.no_program_box.deleteLater()
        parent = self.parent()
        box = QMessageBox(QMessageBox.Icon.Information, self.tr("Open"),
                          self.tr("Nothing on this computer opens “{name}”.").format(
                              name=info.name),
                          QMessageBox.StandardButton.Close,
                          parent if isinstance(parent, QWidget) else None)
        box.setInformativeText(self.tr(
            "Show it in its folder to open it with another program, or to move it."))
        show = box.addButton(action_label(FileAction.SHOW), QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(show)
        box.finished.connect(lambda _: self._open(info, FileAction.SHOW)
                             if box.clickedButton() is show else None)
        self.no_program_box = box
        box.open()
        return box

    def show_in_folder_button(self) -> QPushButton | None:
        """The open "Nothing opens this file" box's Show in Folder (keyboard paths, tests)."""
        box = self.no_program_box
        if box is None or not box.isVisible():
            return None
        for button in box.buttons():
            if box.buttonRole(button) == QMessageBox.ButtonRole.AcceptRole:
                return button if isinstance(button, QPushButton) else None
        return None
