"""Help ▸ Keyboard Shortcuts (Ctrl+/): every key the window knows, on one page.

The menu items' keys are read from the menus themselves, so the page cannot drift from what
the keys do; the keys that belong to no menu item (Enter in the composer, Tab, the keys of the
message list and the chat list) are listed here by hand.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMenu,
    QMenuBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


def _plain(text: str) -> str:
    """A menu text without its mnemonic and ellipsis: "&Add Contact…" -> "Add Contact"."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


def _keys(action: QAction) -> str:
    return ", ".join(key.toString(QKeySequence.SequenceFormat.NativeText)
                     for key in action.shortcuts())


class ShortcutsDialog(QDialog):
    """A two-column list (what, keys) grouped by menu, then the keys outside the menus."""

    def __init__(self, menus: QMenuBar, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Keyboard Shortcuts"))
        self.resize(560, 620)
        layout = QVBoxLayout(self)
        self.list = QTreeWidget(self)
        self.list.setHeaderLabels([self.tr("Action"), self.tr("Keys")])
        self.list.setRootIsDecorated(False)
        self.list.setAccessibleName(self.tr("Keyboard shortcuts"))
        self.list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.list.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.list)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        for menu_action in menus.actions():
            menu = menu_action.menu()
            if isinstance(menu, QMenu):
                self._group(_plain(menu.title()), [
                    (_plain(a.text()), _keys(a)) for a in menu.actions()
                    if not a.isSeparator() and a.shortcuts()])
        self._group(self.tr("Writing"), [
            (self.tr("Send the message"), self.tr("Enter")),
            (self.tr("New line"), self.tr("Shift+Enter")),
            (self.tr("Choose files to send"), self.tr("Ctrl+Shift+A")),
            (self.tr("Paste files or a picture to send them"), self.tr("Ctrl+V")),
        ])
        self._group(self.tr("Moving around"), [
            (self.tr("Next and previous part of the window"), self.tr("Tab, Shift+Tab")),
            (self.tr("From the search box into the list"), self.tr("Down")),
            (self.tr("Open the first match of the search"), self.tr("Enter")),
            (self.tr("The actions of a chat in the list"), self.tr("Menu, Shift+F10")),
        ])
        self._group(self.tr("Messages"), [
            (self.tr("Select part of a message, open its links"), self.tr("Enter")),
            (self.tr("Copy the selected messages"), self.tr("Ctrl+C")),
            (self.tr("Jump to the newest message"), self.tr("Ctrl+End")),
            (self.tr("A file: its first action (Accept, Open)"), self.tr("Enter")),
            (self.tr("A file: cancel or decline it"), self.tr("Delete")),
        ])
        self.list.expandAll()

    def _group(self, title: str, rows: list[tuple[str, str]]) -> None:
        if not rows:
            return
        group = QTreeWidgetItem([title, ""])
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.list.addTopLevelItem(group)
        for what, keys in rows:
            group.addChild(QTreeWidgetItem([what, keys]))

    def rows(self) -> list[tuple[str, str]]:
        """(action, keys) of every row, top to bottom (what tests and screen readers read)."""
        out = []
        for i in range(self.list.topLevelItemCount()):
            group = self.list.topLevelItem(i)
            children = [group.child(j) for j in range(group.childCount())] if group else []
            out += [(child.text(0), child.text(1)) for child in children if child is not None]
        return out
