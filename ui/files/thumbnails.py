"""Previews of local images for file cards, decoded off the Qt thread.

A photo can be tens of megabytes; decoding it in ``paint`` would freeze scrolling. ``get``
answers from the cache or returns None and queues a ``QImageReader`` job on the global
``QThreadPool`` that decodes straight to the small size (``setScaledSize``: JPEG decoders then
skip most of the work). The worker hands back a ``QImage`` through a queued signal; only the Qt
thread turns it into a ``QPixmap``, and ``ready(path)`` tells the view to repaint.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap

CACHE_LIMIT = 200


class _Relay(QObject):
    """Lives on the Qt thread; the worker emits through it (a queued connection)."""

    done = Signal(str, QImage)


class _Decode(QRunnable):
    def __init__(self, path: str, size: QSize, mode: Qt.AspectRatioMode, relay: _Relay) -> None:
        super().__init__()
        self._path, self._size, self._mode, self._relay = path, size, mode, relay

    def run(self) -> None:
        image = QImage()
        try:
            reader = QImageReader(self._path)
            reader.setAutoTransform(True)
            full = reader.size()
            if full.isValid() and full.width() > 0 and full.height() > 0:
                wanted = full.scaled(self._size, self._mode)
                if self._mode == Qt.AspectRatioMode.KeepAspectRatio:
                    wanted = full.boundedTo(wanted)  # never blown up beyond its own size
                reader.setScaledSize(wanted)
                image = reader.read()
        finally:
            self._relay.done.emit(self._path, image)


class ThumbnailCache(QObject):
    """Pixmaps by path at one size; ``ready(path)`` once a requested one is decoded.

    ``KeepAspectRatioByExpanding`` (the default) covers ``size`` (for a square crop);
    ``KeepAspectRatio`` fits inside it, the picture's own shape kept (for a preview).
    """

    ready = Signal(str)

    def __init__(self, size: QSize, parent: QObject | None = None, *,
                 mode: Qt.AspectRatioMode = Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                 limit: int = CACHE_LIMIT) -> None:
        super().__init__(parent)
        self._size = size
        self._mode = mode
        self._limit = limit
        self._pixmaps: OrderedDict[str, QPixmap | None] = OrderedDict()  # None: not an image
        self._waiting: set[str] = set()
        self._relay = _Relay(self)
        self._relay.done.connect(self._decoded)

    def get(self, path: str) -> QPixmap | None:
        """The thumbnail if decoded; otherwise None (and decoding starts if it has not)."""
        if path in self._pixmaps:
            self._pixmaps.move_to_end(path)
            return self._pixmaps[path]
        if path not in self._waiting:
            self._waiting.add(path)
            QThreadPool.globalInstance().start(_Decode(path, self._size, self._mode, self._relay))
        return None

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def _decoded(self, path: str, image: QImage) -> None:
        self._waiting.discard(path)
        self._pixmaps[path] = None if image.isNull() else QPixmap.fromImage(image)
        if len(self._pixmaps) > self._limit:
            self._pixmaps.popitem(last=False)
        self.ready.emit(path)
