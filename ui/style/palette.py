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


def over(foreground: QColor, background: QColor) -> QColor:
    """``foreground`` as it shows on ``background`` (its transparency blended in)."""
    if foreground.alphaF() >= 1.0:
        return foreground
    solid = QColor(foreground)
    solid.setAlphaF(1.0)
    blended = mix(background, solid, foreground.alphaF())
    blended.setAlphaF(1.0)
    return blended


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio of text ``a`` on ``b``: 1 (none) to 21 (black on white)."""
    high, low = sorted((luminance(over(a, b)), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


READABLE = 4.5  # WCAG AA for body text


def readable_on(background: QColor, preferred: QColor) -> QColor:
    """``preferred`` as it shows on ``background``, moved towards black or white (whichever
    reads better there) just far enough to read (WCAG AA): a desktop theme may pair colours
    that do not, and a muted colour should stay as muted as it can."""
    colour = over(preferred, background)
    black, white = QColor("#000000"), QColor("#ffffff")
    extreme = black if contrast(black, background) > contrast(white, background) else white
    for step in range(11):
        moved = mix(colour, extreme, step / 10)
        if contrast(moved, background) >= READABLE:
            return moved
    return extreme


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
