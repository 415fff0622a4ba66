"""The full emoji picker for reactions: a grid of common emoji, and a box for any other.

Recent choices lead the quick row of a message's React menu (``RecentEmoji``); the picker is
for the rest. It never blocks: ``chosen`` fires with the emoji and the dialog closes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

QUICK_EMOJI = ("👍", "❤️", "😂", "😮", "😢", "🙏")
_PICKER = (
    "😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😋 😛 😜 🤪 🤗 🤔 🤨 😐 😑 😶 😏 "
    "😒 🙄 😬 😌 😔 😪 😴 😷 🤒 🤯 🥳 😎 🤓 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 "
    "😱 😖 😣 😞 😓 😩 😫 😤 😡 😠 🤬 👍 👎 👌 ✌️ 🤞 🤝 👏 🙌 👐 🙏 💪 👀 🧠 ❤️ 🧡 💛 "
    "💚 💙 💜 🖤 🤍 💔 💯 🔥 ✨ 🎉 🎊 🎁 🏆 ⭐ 🌟 ☀️ 🌈 ☕ 🍕 🍰 🍻 🚀 ✅ ❌ ❓ ❗ 💡 📌"
)
PICKER_EMOJI = tuple(_PICKER.split())
COLUMNS = 12
MAX_RECENT = len(QUICK_EMOJI)


class RecentEmoji:
    """The quick row: the emoji reacted with most recently, then the usual ones."""

    def __init__(self) -> None:
        self._recent: list[str] = []

    def used(self, emoji: str) -> None:
        if emoji in self._recent:
            self._recent.remove(emoji)
        self._recent.insert(0, emoji)
        del self._recent[MAX_RECENT:]

    def row(self) -> list[str]:
        out = list(self._recent)
        out += [e for e in QUICK_EMOJI if e not in out]
        return out[:MAX_RECENT]


class EmojiPicker(QDialog):
    """A grid of emoji and a box for any other; ``chosen(emoji)`` once one is picked."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("React"))
        layout = QVBoxLayout(self)
        grid = QGridLayout()
        grid.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for i, emoji in enumerate(PICKER_EMOJI):
            button = QToolButton(self)
            button.setText(emoji)
            button.setAutoRaise(True)
            button.setAccessibleName(emoji)
            button.clicked.connect(lambda _=False, e=emoji: self._pick(e))
            grid.addWidget(button, i // COLUMNS, i % COLUMNS)
            self.buttons[emoji] = button
        layout.addLayout(grid)
        self.other = QLineEdit(self)
        self.other.setPlaceholderText(self.tr("Any other emoji, then Enter"))
        self.other.returnPressed.connect(lambda: self._pick(self.other.text().strip()))
        layout.addWidget(self.other)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def _pick(self, emoji: str) -> None:
        if emoji:
            self.chosen.emit(emoji)
            self.accept()
