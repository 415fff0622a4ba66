"""Colours derived from the system palette, so light and dark mode both work without a theme.

Widgets never hard-code a background or text colour; they mix palette roles. The only fixed hues
are signal colours (presence green, error red) blended into the palette, which read well on both.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

ONLINE = QColor("#22a559")
CONNECTING = QColor("#e0a526")
ERROR = QColor("#d93f3f")


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved a fraction ``t`` towards ``b``."""
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * t,
        a.greenF() + (b.greenF() - a.greenF()) * t,
        a.blueF() + (b.blueF() - a.blueF()) * t,
        a.alphaF() + (b.alphaF() - a.alphaF()) * t,
    )


def luminance(colour: QColor) -> float:
    """WCAG 2 relative luminance (0 black .. 1 white) of an opaque colour."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    return (0.2126 * linear(colour.redF()) + 0.7152 * linear(colour.greenF())
            + 0.0722 * linear(colour.blueF()))


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (none) to 21 (black on white)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


READABLE = 4.5  # WCAG AA for body text


def readable_on(background: QColor, preferred: QColor) -> QColor:
    """``preferred`` if it reads on ``background`` (WCAG AA), else black or white, whichever
    reads better: a desktop theme may pair colours that do not."""
    if contrast(preferred, background) >= READABLE:
        return preferred
    black, white = QColor("#000000"), QColor("#ffffff")
    return black if contrast(black, background) > contrast(white, background) else white


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def muted_text(palette: QPalette) -> QColor:
    """Secondary text: between the text and the background."""
    return mix(
        palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.4
    )


def sidebar_background(palette: QPalette) -> QColor:
    """A shade off the content background, so the sidebar reads as a separate pane."""
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    return mix(base, text, 0.07 if is_dark(palette) else 0.035)


def card_background(palette: QPalette) -> QColor:
    """Cards on the sidebar: the content background, slightly raised."""
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    return mix(base, text, 0.02) if is_dark(palette) else base


def hairline(palette: QPalette) -> QColor:
    """Separator lines and card borders."""
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    return mix(base, text, 0.16 if is_dark(palette) else 0.11)


def error_background(palette: QPalette) -> QColor:
    return mix(palette.color(QPalette.ColorRole.Base), ERROR, 0.14)


def error_border(palette: QPalette) -> QColor:
    return mix(palette.color(QPalette.ColorRole.Base), ERROR, 0.55)


def accent(palette: QPalette) -> QColor:
    return palette.color(QPalette.ColorRole.Highlight)
