"""Icons from ``resources/icons``, tinted from the palette so they work in light and dark mode,
and the fonts Kith falls back on.

Line icons are drawn with ``stroke="currentColor"``; Qt's SVG renderer does not know the current
colour, so we substitute a palette colour before rendering instead of shipping one set per theme.

Fonts: on a machine with no fonts at all the bundled DejaVu Sans becomes the interface font, and
on one without a colour emoji font the bundle's Noto Color Emoji (packaging/kith.spec puts it in
``resources/fonts``) becomes the font emoji are drawn with, so neither shows as empty boxes.
"""

from __future__ import annotations

import logging
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontInfo,
    QGuiApplication,
    QIcon,
    QPainter,
    QPixmap,
    QTextLayout,
)
from PySide6.QtSvg import QSvgRenderer

log = logging.getLogger(__name__)


def _resources_dir() -> Path:
    """``resources/`` beside the packages; in a PyInstaller bundle, in its data folder."""
    bundle = getattr(sys, "_MEIPASS", None)  # set by PyInstaller's bootloader
    if getattr(sys, "frozen", False) and bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


RESOURCES = _resources_dir()
ICONS = RESOURCES / "icons"
APP_ICON = ICONS / "kith.svg"
FONTS = RESOURCES / "fonts"
EMOJI_FONT = "NotoColorEmoji.ttf"
EMOJI_PROBE = "\U0001F600\U0001F4CE"  # 😀 and the 📎 of file previews
# What fontconfig reports when it has no font files at all: its generic aliases only.
_GENERIC_FAMILIES = frozenset(
    {"monospace", "sans serif", "sans-serif", "sans", "serif", "mono", "fixed", "cursive",
     "fantasy", "system-ui"}
)


def system_has_fonts() -> bool:
    """False on a machine with no font files (QFontDatabase knows only generic aliases)."""
    return any(f.lower() not in _GENERIC_FAMILIES for f in QFontDatabase.families())


def ensure_ui_font(app: QGuiApplication) -> str | None:
    """On a machine with no fonts, load the bundled DejaVu Sans and make it the UI font.

    Returns the family now used, or None when the system's fonts are used as they are (the
    usual case: nothing is loaded then). Needs the application object; never fatal.
    """
    if system_has_fonts():
        return None
    families: list[str] = []
    for path in sorted(FONTS.glob("DejaVu*.ttf")):
        font_id = QFontDatabase.addApplicationFont(str(path))
        if font_id < 0:
            log.warning("could not load the font %s", path)
            continue
        families += QFontDatabase.applicationFontFamilies(font_id)
    if not families:
        log.warning("no fonts on this system and none bundled in %s: text may not show", FONTS)
        return None
    font = QFont(app.font())
    font.setFamilies([families[0]])
    app.setFont(font)
    # A warning: it is logged before logging is set up, and tells people to install fonts.
    log.warning("no fonts installed on this system; using the bundled %s", families[0])
    return families[0]


def emoji_family(font: QFont, text: str = EMOJI_PROBE) -> str | None:
    """The family that draws ``text``'s emoji when written in ``font`` (Qt's fallback included),
    or None when some emoji has no glyph in any font (it would show as an empty box)."""
    layout = QTextLayout(text, font)
    layout.beginLayout()
    line = layout.createLine()
    layout.endLayout()
    if not line.isValid():
        return None
    families = []
    for run in line.glyphRuns():
        if not run.glyphIndexes() or 0 in run.glyphIndexes():
            return None  # glyph 0 is a font's "missing" box
        families.append(run.rawFont().familyName())
    fallbacks = [f for f in families if f != QFontInfo(font).family()]
    return fallbacks[0] if fallbacks else families[0] if families else None


def ensure_emoji_font(app: QGuiApplication, fonts: Path = FONTS) -> str | None:
    """Without an emoji font on the system, load the bundled one and draw emoji with it.

    Returns the family loaded, or None when the system's fonts already have emoji (or no font
    is bundled: a source checkout relies on the system's, see packaging/setup.sh).
    """
    if emoji_family(app.font()) is not None:
        return None
    path = fonts / EMOJI_FONT
    if not path.exists():
        log.warning("no emoji font on this system: emoji may show as empty boxes (on Debian "
                    "or Ubuntu: apt-get install fonts-noto-color-emoji)")
        return None
    font_id = QFontDatabase.addApplicationFont(str(path))
    families = QFontDatabase.applicationFontFamilies(font_id) if font_id >= 0 else []
    if not families:
        log.warning("could not load the bundled emoji font %s", path)
        return None
    QFontDatabase.addApplicationEmojiFontFamily(families[0])
    log.warning("no emoji font installed on this system; using the bundled %s", families[0])
    return families[0]


def app_icon() -> QIcon:
    """The window icon; an empty icon when the resources folder is missing (never fatal)."""
    return QIcon(str(APP_ICON)) if APP_ICON.exists() else QIcon()


@cache
def _svg_source(name: str) -> bytes:
    path = ICONS / f"{name}.svg"
    return path.read_bytes() if path.exists() else b""


def tinted_pixmap(name: str, color: QColor, size: int, ratio: float = 1.0) -> QPixmap:
    """Render ``resources/icons/<name>.svg`` with ``currentColor`` replaced by ``color``."""
    pixels = max(1, round(size * ratio))
    pixmap = QPixmap(QSize(pixels, pixels))
    pixmap.fill(Qt.GlobalColor.transparent)
    source = _svg_source(name)
    if source:
        svg = source.replace(b"currentColor", color.name(QColor.NameFormat.HexRgb).encode())
        renderer = QSvgRenderer(QByteArray(svg))
        painter = QPainter(pixmap)
        painter.setOpacity(color.alphaF())
        renderer.render(painter, QRectF(0, 0, pixels, pixels))
        painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def tinted_icon(name: str, color: QColor, disabled: QColor | None = None) -> QIcon:
    """An icon in ``color`` (and ``disabled`` for the disabled state) at the usual sizes."""
    icon = QIcon()
    for size in (16, 20, 24, 32, 48):
        icon.addPixmap(tinted_pixmap(name, color, size), QIcon.Mode.Normal)
        if disabled is not None:
            icon.addPixmap(tinted_pixmap(name, disabled, size), QIcon.Mode.Disabled)
    return icon
