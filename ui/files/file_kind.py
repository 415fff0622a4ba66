"""What kind of file a transfer carries (image, video, ...), from its media type or its name.

Cards pick their glyph by it, and pictures get a preview and a viewer.
"""

from __future__ import annotations

from enum import StrEnum

from PySide6.QtCore import QMimeDatabase


class FileKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    ARCHIVE = "archive"
    DOCUMENT = "document"
    OTHER = "other"


ARCHIVES = ("zip", "tar", "gzip", "x-7z", "x-rar", "x-bzip", "x-xz", "zstd", "compressed")
DOCUMENTS = ("pdf", "text/", "document", "msword", "spreadsheet", "presentation", "rtf", "epub")
_MIME = QMimeDatabase()


def file_kind(name: str, mime: str = "") -> FileKind:
    """image/video/audio/archive/document/other, from the media type or the name's extension."""
    if not mime or mime == "application/octet-stream":
        mime = _MIME.mimeTypeForFile(name, QMimeDatabase.MatchMode.MatchExtension).name()
    for prefix, kind in (("image/", FileKind.IMAGE), ("video/", FileKind.VIDEO),
                         ("audio/", FileKind.AUDIO)):
        if mime.startswith(prefix):
            return kind
    if any(part in mime for part in ARCHIVES):
        return FileKind.ARCHIVE
    if any(part in mime for part in DOCUMENTS):
        return FileKind.DOCUMENT
    return FileKind.OTHER
