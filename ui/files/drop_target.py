"""Dropping files on the window: which drags carry files, folders as their files, and the
highlight that says where a drop will go.

Both drop targets (a row of the sidebar, the open conversation) are item views whose own drag
handling belongs to their models, so instead of subclassing them a ``FileDropFilter`` watches
their viewport: it accepts only drags that carry local files, asks the owner what is under the
cursor, and paints a ``DropOverlay`` over the viewport (an outline around the row, or a veil
with "Drop to send to …"). A drag of text or anything else is ignored and shows nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, QRect, QRectF, Qt
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QWidget

from ui.style import palette as pal

MAX_FILES = 1000  # a dropped folder beyond this is refused with a message, not walked forever


@dataclass(frozen=True)
class DropTarget:
    """Where a drop would go: a peer or room id, its name, and the rectangle to outline
    (``None``: the whole viewport)."""

    key: str
    name: str
    rect: QRect | None = None


def local_paths(mime: QMimeData | None) -> list[str]:
    """The local files and folders a drag or paste carries (remote URLs are not files)."""
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


def expand(paths: Iterable[str]) -> list[tuple[str, str | None]]:
    """(path, name to offer) for every file: a file is itself (``None``: its own name); a folder
    becomes its files with names relative to the folder's parent ("Folder/sub/x.txt").
    Symbolic links inside folders are skipped, so a link cannot pull in files from elsewhere."""
    out: list[tuple[str, str | None]] = []
    for path in paths:
        path = os.path.normpath(path)
        if not os.path.isdir(path):
            out.append((path, None))
            continue
        parent = os.path.dirname(path)
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.islink(full):
                    continue
                out.append((full, os.path.relpath(full, parent).replace(os.sep, "/")))
                if len(out) > MAX_FILES:
                    return out
    return out


class DropOverlay(QWidget):
    """Drawn over a viewport during a file drag; never takes mouse events."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.target: DropTarget | None = None
        self.hide()

    def show_target(self, target: DropTarget | None) -> None:
        if target == self.target and self.isVisible() == (target is not None):
            return
        self.target = target
        if target is None:
            self.hide()
            return
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.show()
        self.raise_()
        self.update()

    def text(self) -> str:
        """What the veil says ("Drop to send to Bob"); empty for a row outline or when hidden."""
        target = self.target
        if target is None or target.rect is not None or not self.isVisible():
            return ""
        return self.tr("Drop to send to {name}").format(name=target.name)

    def paintEvent(self, event: QPaintEvent) -> None:
        target = self.target
        if target is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        accent = pal.accent(palette)
        if target.rect is not None:
            box = QRectF(target.rect).adjusted(6, 1.5, -6, -1.5)
            fill = accent
            fill.setAlphaF(0.18)
            painter.setBrush(fill)
            painter.setPen(QPen(pal.accent(palette), 2))
            painter.drawRoundedRect(box, 8, 8)
            return
        veil = palette.color(QPalette.ColorRole.Base)
        veil.setAlphaF(0.97)  # the empty-state text under it must not show through
        painter.fillRect(self.rect(), veil)
        frame = QRectF(self.rect()).adjusted(12, 12, -12, -12)
        pen = QPen(accent, 2, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(frame, 14, 14)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, self.text())


class FileDropFilter(QObject):
    """Makes a viewport a drop target for files: ``target_at(pos)`` says what is under the
    cursor (or None), ``dropped(target, paths)`` is called on a drop there."""

    def __init__(self, viewport: QWidget, target_at: Callable[[QPoint], DropTarget | None],
                 dropped: Callable[[DropTarget, list[str]], None]) -> None:
        super().__init__(viewport)
        self._viewport = viewport
        self._target_at = target_at
        self._dropped = dropped
        self.overlay = DropOverlay(viewport)
        viewport.setAcceptDrops(True)
        viewport.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is not self._viewport:
            return False
        if kind == QEvent.Type.DragLeave:
            self.overlay.show_target(None)
            return True
        if kind == QEvent.Type.Resize and self.overlay.isVisible():
            self.overlay.setGeometry(self._viewport.rect())
            return False
        if not isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent):
            return False
        paths = local_paths(event.mimeData())
        target = self._target_at(event.position().toPoint()) if paths else None
        if kind == QEvent.Type.Drop:
            self.overlay.show_target(None)
            if target is None:
                event.ignore()
                return True
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self._dropped(target, paths)
            return True
        if not paths:  # text, images from a browser page, ...: not ours, no indicator
            event.ignore()
            self.overlay.show_target(None)
            return True
        self.overlay.show_target(target)
        event.setDropAction(Qt.DropAction.CopyAction)
        if kind == QEvent.Type.DragEnter or target is not None:
            event.accept()  # entering with files: keep getting moves even over a section title
        else:
            event.ignore()
        return True
