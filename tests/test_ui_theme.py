"""Light and dark, switched at run time as Settings ▸ Appearance does: every text the window
paints reads on what it is painted on (WCAG contrast of the colours actually used), and
widgets with style sheets (the invite card, the composer) and the sidebar's scroll bar follow
the switch instead of keeping the palette they started with."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QScrollBar,
    QStyle,
    QStyleOptionSlider,
    QStyleOptionViewItem,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.core.events import RoomChanged
from app.core.records import ChatPrefs, ContactInfo, ContactState, RoomInfo
from ui.identity.node_state import NodeState
from ui.style import palette as pal
from ui.style.theme import apply_theme
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
CLEO = "12D3KooWHQ9T2zxEr5yEdCdu6N1fJqd7yDkNVsAZoZ7YHdRcdzvk"
READABLE = 4.5


@pytest.fixture(autouse=True)
def back_to_the_system_theme(qapp: QApplication) -> Iterator[None]:
    yield
    apply_theme("system", qapp)


def contact(peer_id: str, name: str, **changes: object) -> ContactInfo:
    base: dict[str, object] = dict(peer_id=peer_id, name=name, their_name=name, local_name=None,
                state=ContactState.CONTACT, verified=True, online=False, last_seen=None,
                unread=0, last_message="See you on Thursday", last_activity=time.time())
    base.update(changes)
    return ContactInfo(**base)  # type: ignore[arg-type]


def room(name: str = "Book club") -> RoomInfo:
    return RoomInfo(room_id="ab" * 16, name=name, description="", invite="kith:room?x",
                    members=3, online=2, unread=2, last_message="Next up: a classic",
                    last_activity=time.time() + 10)


def new_window(qtbot: QtBot) -> MainWindow:
    window = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    model = window.sidebar.model
    model.upsert_contact(contact(BOB, "Bob", unread=3))
    model.upsert_contact(contact(CLEO, "Cleo", online=True))
    model.set_prefs(ChatPrefs(CLEO, muted=True, pinned=True))
    model.set_draft(CLEO, "half a thought")
    assert window.open_peer(BOB)
    window.conversation.composer.set_target("Bob")  # no client here: enable it by hand
    return window


def entry_option(window: MainWindow, key: str, selected: bool) -> QStyleOptionViewItem:
    view = window.sidebar.view
    index = window.sidebar.index_of(key)
    assert index is not None
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = view.visualRect(index)
    if selected:
        option.state |= QStyle.StateFlag.State_Selected
    else:
        option.state &= ~QStyle.StateFlag.State_Selected
    return option


def assert_reads(what: str, text: QColor, background: QColor) -> None:
    ratio = pal.contrast(text, background)
    assert ratio >= READABLE, (
        f"{what}: {text.name()} on {background.name()} has contrast {ratio:.2f}")


def assert_window_readable(window: MainWindow, dark: bool) -> None:
    QApplication.processEvents()
    app_palette = QApplication.palette()
    assert pal.is_dark(app_palette) is dark
    sidebar_bg = pal.sidebar_background(window.palette())
    assert (sidebar_bg.lightnessF() < 0.5) is dark

    delegate = window.sidebar.view.delegate
    for key, muted in ((BOB, False), (CLEO, True)):
        for selected in (False, True):
            colours = delegate.row_colours(entry_option(window, key, selected), muted)
            if not selected:
                assert colours.background == sidebar_bg
            for what, colour in (("name", colours.name), ("preview", colours.preview),
                                 ("draft", colours.draft)):
                assert_reads(f"{what} of {key[:10]} (selected={selected})", colour,
                             colours.background)
            assert_reads("unread badge", colours.badge_text, colours.badge)

    composer = window.conversation.composer
    box = composer.box.palette().color(QPalette.ColorRole.Base)
    assert (box.lightnessF() < 0.5) is dark
    placeholder = composer.edit.palette().color(QPalette.ColorRole.PlaceholderText)
    assert_reads("the composer's placeholder", placeholder, box)
    assert_reads("the composer's text", composer.edit.palette().color(QPalette.ColorRole.Text),
                 box)

    card = window.identity_panel
    card_bg = pal.card_background(card.palette())
    assert (card_bg.lightnessF() < 0.5) is dark, "the invite card keeps the other theme"
    assert_reads("the invite card's title", card.title.palette().color(
        QPalette.ColorRole.WindowText), card_bg)
    field = card.invite_edit.palette()
    assert (field.color(QPalette.ColorRole.Base).lightnessF() < 0.5) is dark
    assert_reads("your invite", field.color(QPalette.ColorRole.Text),
                 pal.sidebar_background(card.palette()))
    assert_reads("the invite card's hint", card.hint.palette().color(
        QPalette.ColorRole.PlaceholderText), card_bg)

    bar: QWidget = window.sidebar.view.verticalScrollBar()
    for role in (QPalette.ColorRole.Window, QPalette.ColorRole.Button):
        assert bar.palette().color(role) == app_palette.color(role), \
            "the sidebar's scroll bar keeps the other theme"
    # Drawn by the theme's style: under a style sheet it was a bare box with a black handle.
    assert bar.style().metaObject().className() == \
        QApplication.style().metaObject().className()
    assert window.sidebar.view.palette().color(QPalette.ColorRole.Base).alpha() == 0

    header = window.conversation.header
    assert_reads("the conversation's name", header.name_label.palette().color(
        QPalette.ColorRole.WindowText), window.conversation.palette().color(
        QPalette.ColorRole.Base))


@pytest.mark.parametrize(("first", "then"), [("light", "dark"), ("dark", "light"),
                                             ("dark", "dark")])
def test_switching_themes_keeps_every_text_readable(
    qtbot: QtBot, qapp: QApplication, first: str, then: str,
) -> None:
    apply_theme(first, qapp)
    window = new_window(qtbot)
    assert_window_readable(window, first == "dark")
    apply_theme(then, qapp)
    assert_window_readable(window, then == "dark")


def test_a_room_created_while_a_contact_is_selected_keeps_the_row_readable(
    qtbot: QtBot, qapp: QApplication,
) -> None:
    apply_theme("dark", qapp)
    window = new_window(qtbot)
    window.rooms.show_new_room()  # the dialog takes the focus: the window is inactive
    qtbot.waitUntil(lambda: window.rooms.new_room_dialog is not None
                    and window.rooms.new_room_dialog.isVisible())
    window.events.publish(RoomChanged(room=room()))  # the room arrives above the contacts
    QApplication.processEvents()
    bob_row = window.sidebar.index_of(BOB)
    assert bob_row is not None
    assert window.sidebar.view.selectionModel().isSelected(bob_row)
    colours = window.sidebar.view.delegate.row_colours(entry_option(window, BOB, True))
    assert_reads("the selected contact", colours.name, colours.background)
    assert colours.background.lightnessF() > 0.2  # the highlight, not black
    assert window.rooms.new_room_dialog is not None
    window.rooms.new_room_dialog.reject()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_an_unchecked_box_can_be_seen(qtbot: QtBot, theme: str) -> None:
    """Fusion outlined an unchecked box in a darker window colour on the base colour: on the
    dark palette, both near black (Settings' boxes, the contacts to invite to a room)."""
    from PySide6.QtWidgets import QCheckBox, QStyleOptionButton

    apply_theme(theme)
    box = QCheckBox("Keep Kith running when the window closes")
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = box.grab().toImage()
    behind = box.palette().color(QPalette.ColorRole.Window)
    edge = [image.pixelColor(x, rect.center().y()) for x in range(rect.left(), rect.right() + 1)]
    edge += [image.pixelColor(rect.center().x(), y) for y in range(rect.top(), rect.bottom() + 1)]
    seen = max(pal.contrast(colour, behind) for colour in edge)
    assert seen >= 3.0, f"{theme}: the box's outline is {seen:.2f}:1 against the window"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_scroll_handle_stands_out_from_its_groove_and_more_while_dragged(
    qtbot: QtBot, qapp: QApplication, theme: str,
) -> None:
    """Fusion drew the handle near-white on a near-white groove in the light theme."""
    apply_theme(theme, qapp)
    bar = QScrollBar(Qt.Orientation.Vertical)
    qtbot.addWidget(bar)
    bar.setRange(0, 300)
    bar.setPageStep(100)
    bar.resize(bar.sizeHint().width(), 240)
    bar.show()
    qtbot.waitExposed(bar)
    option = QStyleOptionSlider()
    bar.initStyleOption(option)
    handle = bar.style().subControlRect(QStyle.ComplexControl.CC_ScrollBar, option,
                                        QStyle.SubControl.SC_ScrollBarSlider, bar)
    groove = bar.style().subControlRect(QStyle.ComplexControl.CC_ScrollBar, option,
                                        QStyle.SubControl.SC_ScrollBarGroove, bar)
    assert handle.bottom() + 20 < groove.bottom()
    below = QPoint(groove.center().x(), (handle.bottom() + groove.bottom()) // 2)

    def colours() -> tuple[QColor, QColor]:
        image = bar.grab().toImage()
        return image.pixelColor(handle.center()), image.pixelColor(below)

    idle, track = colours()
    assert pal.contrast(idle, track) >= 3.0, (idle.name(), track.name())
    qtbot.mousePress(bar, Qt.MouseButton.LeftButton, pos=handle.center())
    dragged, track = colours()
    qtbot.mouseRelease(bar, Qt.MouseButton.LeftButton, pos=handle.center())
    assert pal.contrast(dragged, track) > pal.contrast(idle, track)
