"""Render resources/icons/kith.svg into the icon files the launcher and the bundle use.

    .venv/bin/python packaging/render_icons.py

Writes, under resources/icons/:
  hicolor/<N>x<N>/apps/kith.png   for N in SIZES (freedesktop icon theme layout)
  hicolor/scalable/apps/kith.svg  a copy of kith.svg
  kith.ico                        Windows (16-256 px, PNG-compressed entries)
  kith.icns                       macOS (16-512 px, PNG elements; packaging/README.md shows
                                  how to build it with iconutil instead)

Uses only Qt (QSvgRenderer, offscreen), so it runs headless. Run it again after changing
kith.svg and commit the results.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
SOURCE = ICONS / "kith.svg"
HICOLOR = ICONS / "hicolor"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image.convertToFormat(QImage.Format.Format_ARGB32)


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico holding one PNG per size (the PNG-in-ICO form, Windows Vista and later)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    entries = b""
    offset = 6 + 16 * len(pngs)
    for size, png in pngs.items():
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
    return header + entries + b"".join(pngs.values())


# icns element types holding PNG data, by pixel size (Apple's "Icon Services" types).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns: the same PNGs, each as a typed element."""
    body = b"".join(
        ICNS_TYPES[size] + struct.pack(">I", 8 + len(png)) + png for size, png in pngs.items()
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        print(f"cannot read {SOURCE}", file=sys.stderr)
        return 1
    for size in SIZES:
        out = HICOLOR / f"{size}x{size}" / "apps" / "kith.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not render(renderer, size).save(str(out), "PNG"):
            print(f"could not write {out}", file=sys.stderr)
            return 1
        print(out.relative_to(ROOT))
    scalable = HICOLOR / "scalable" / "apps" / "kith.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, scalable)
    print(scalable.relative_to(ROOT))
    pngs = {size: png_bytes(render(renderer, size)) for size in sorted({*ICO_SIZES, *ICNS_SIZES})}
    (ICONS / "kith.ico").write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    (ICONS / "kith.icns").write_bytes(icns_bytes({s: pngs[s] for s in ICNS_SIZES}))
    print((ICONS / "kith.ico").relative_to(ROOT))
    print((ICONS / "kith.icns").relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
