"""Appearance: follow the system, or force light or dark (Settings ▸ Appearance).

Every widget derives its colours from the palette (``ui/style/palette.py``) and re-tints on
``PaletteChange``, so switching is just replacing the application palette, at once and
without a restart. Forced light and dark use the Fusion style, because native styles (Windows,
macOS) draw from the platform's colours and ignore an application palette; "system" restores
the style and palette Qt started with.
"""

from __future__ import annotations

import weakref

import shiboken6
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QProxyStyle,
    QStyle,
    QStyleFactory,
    QStyleOption,
    QStyleOptionComplex,
    QStyleOptionSlider,
    QWidget,
)

from ui.style.palette import contrast, mix

THEMES = ("system", "light", "dark")
EDGE_TOWARD_TEXT = 0.6  # a check box's outline: this far from the base colour toward the text
HANDLE_CONTRAST = 3.0  # a scroll handle against its groove (WCAG's for user interface parts)

_original: tuple[str, QPalette] | None = None
_current = "system"

Role = QPalette.ColorRole
Group = QPalette.ColorGroup


def _remember_original(app: QApplication) -> tuple[str, QPalette]:
    global _original
    if _original is None:
        _original = (app.style().name(), QPalette(app.palette()))
    return _original


def light_palette() -> QPalette:
    palette = QPalette()
    colours = {
        Role.Window: "#f3f3f5", Role.WindowText: "#1d1d1f", Role.Base: "#ffffff",
        Role.AlternateBase: "#f5f5f7", Role.ToolTipBase: "#ffffff", Role.ToolTipText: "#1d1d1f",
        Role.PlaceholderText: "#6e6e73", Role.Text: "#1d1d1f", Role.Button: "#ececef",
        Role.ButtonText: "#1d1d1f", Role.BrightText: "#d93f3f", Role.Highlight: "#2f6fdf",
        Role.HighlightedText: "#ffffff", Role.Link: "#2f6fdf", Role.LinkVisited: "#7a4fd0",
        Role.Light: "#ffffff", Role.Midlight: "#e4e4e8", Role.Mid: "#c4c4c8",
        Role.Dark: "#9d9da2", Role.Shadow: "#5a5a5e",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (Role.WindowText, Role.Text, Role.ButtonText):
        palette.setColor(Group.Disabled, role, QColor("#a1a1a6"))
    return palette


def dark_palette() -> QPalette:
    palette = QPalette()
    colours = {
        Role.Window: "#232326", Role.WindowText: "#e8e8ea", Role.Base: "#1b1b1d",
        Role.AlternateBase: "#26262a", Role.ToolTipBase: "#2c2c30", Role.ToolTipText: "#e8e8ea",
        Role.PlaceholderText: "#8e8e93", Role.Text: "#e8e8ea", Role.Button: "#2f2f33",
        Role.ButtonText: "#e8e8ea", Role.BrightText: "#ff6b6b", Role.Highlight: "#336fe0",
        Role.HighlightedText: "#ffffff", Role.Link: "#6ea2ff", Role.LinkVisited: "#a58af0",
        Role.Light: "#3a3a3f", Role.Midlight: "#323236", Role.Mid: "#28282b",
        Role.Dark: "#141416", Role.Shadow: "#000000",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (Role.WindowText, Role.Text, Role.ButtonText):
        palette.setColor(Group.Disabled, role, QColor("#6b6b70"))
    return palette


def scroll_handle(palette: QPalette, active: bool) -> QColor:
    """A scroll bar's handle: the groove's colour moved towards the text until the two
    differ by ``HANDLE_CONTRAST`` (further while it is hovered or dragged). Fusion paints
    the groove with the button colour, darkened by up to 7 % across its width."""
    groove, text = palette.color(Role.Button).darker(108), palette.color(Role.Text)
    for step in range(21):
        colour = mix(groove, text, step / 20)
        if contrast(colour, groove) >= HANDLE_CONTRAST:
            return mix(colour, text, 0.25) if active else colour
    return text


class KithStyle(QProxyStyle):
    """Fusion, with check boxes that show on a dark palette and scroll handles that show on
    a light one.

    Fusion outlines an unchecked box in the window colour made darker, and fills it with the
    base colour: on a dark palette both are near black, and the box cannot be seen (check
    boxes in Settings, the contacts to invite to a room). The outline is drawn again, halfway
    between the base and the text colour, whatever the palette. Fusion's scroll handle is
    the button colour on the window colour, near-white on near-white in the light theme:
    the handle is drawn as a rounded bar that stands out from its groove (``scroll_handle``).
    """

    BOXES = (QStyle.PrimitiveElement.PE_IndicatorCheckBox,
             QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)

    def __init__(self) -> None:
        super().__init__(QStyleFactory.create("Fusion"))

    def drawComplexControl(self, control: QStyle.ComplexControl, option: QStyleOptionComplex,
                           painter: QPainter, widget: QWidget | None = None) -> None:
        if control is not QStyle.ComplexControl.CC_ScrollBar or not isinstance(
                option, QStyleOptionSlider):
            super().drawComplexControl(control, option, painter, widget)
            return
        slider = QStyle.SubControl.SC_ScrollBarSlider
        rest = QStyleOptionSlider(option)
        rest.subControls = option.subControls & ~slider
        super().drawComplexControl(control, rest, painter, widget)
        if not option.subControls & slider or option.maximum == option.minimum:
            return
        handle = self.baseStyle().subControlRect(control, option, slider, widget)
        inset = max(2, min(handle.width(), handle.height()) // 4)
        bar = handle.adjusted(inset, inset, -inset, -inset)
        if bar.isEmpty():
            return
        active = bool(option.activeSubControls & slider) or bool(
            option.state & QStyle.StateFlag.State_Sunken)
        radius = min(bar.width(), bar.height()) / 2
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(scroll_handle(option.palette, active))
        painter.drawRoundedRect(bar, radius, radius)
        painter.restore()

    def drawPrimitive(self, element: QStyle.PrimitiveElement, option: QStyleOption,
                      painter: QPainter, widget: QWidget | None = None) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element not in self.BOXES:
            return
        palette = option.palette
        edge = mix(palette.color(Role.Base), palette.color(Role.Text), EDGE_TOWARD_TEXT)
        box = option.rect
        side = min(box.width(), box.height(), 14)
        square = QRect(0, 0, side, side)
        square.moveCenter(box.center())
        painter.save()
        painter.setPen(QPen(edge, 1))
        painter.setBrush(QColor(0, 0, 0, 0))
        painter.drawRect(square.adjusted(0, 0, -1, -1))
        painter.restore()


def apply_theme(theme: str, app: QApplication | None = None) -> None:
    """Switch the whole application to ``theme`` ("system", "light" or "dark") now."""
    global _current
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}")
    app = app or QApplication.instance()  # type: ignore[assignment]
    if not isinstance(app, QApplication):
        return
    style_name, palette = _remember_original(app)
    if theme == "system":
        if _current != "system":
            style = QStyleFactory.create(style_name)
            if style is not None:
                app.setStyle(style)
            app.setPalette(palette)
    else:
        if not isinstance(app.style(), KithStyle):
            app.setStyle(KithStyle())
        app.setPalette(dark_palette() if theme == "dark" else light_palette())
    _current = theme
    restyle()


_styled: weakref.WeakSet[QWidget] = weakref.WeakSet()


def set_style_sheet(widget: QWidget, sheet: str) -> None:
    """``widget.setStyleSheet(sheet)``, and the widget follows theme changes (``restyle``)."""
    _styled.add(widget)
    widget.setStyleSheet(sheet)


def restyle() -> None:
    """Give Kith's widgets with a style sheet the application's new palette.

    A widget with its own style sheet keeps the palette it was polished with when the
    application palette changes (Qt 6.11): in dark mode it stayed light, or painted light-theme
    text colours on dark. Setting the same sheet again polishes it against the current palette.
    Only widgets styled through ``set_style_sheet`` are touched, never Qt's own.
    """
    for widget in list(_styled):
        if shiboken6.isValid(widget) and widget.styleSheet():
            widget.setStyleSheet(widget.styleSheet())
