"""Ctrl+K: jump to any contact or room by typing part of its name.

The candidates come from the sidebar's model when the switcher opens (so it costs no network
call and matches what the sidebar shows); matching is local and ranked so the obvious entry is
first: a name that starts with the text, then one with a word that does, then any substring,
then the letters in order (``mgr`` finds "Mia Gardner"). Case and accents do not matter.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidgetItem, QWidget

from ui.search.search_panel import PopupPanel

CANDIDATE_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_SHOWN = 50


@dataclass(frozen=True)
class Candidate:
    kind: str      # "room" or "contact"
    key: str       # room id hex or peer id
    name: str
    detail: str = ""


def fold(text: str) -> str:
    """Lower case without accents, so "zoe" finds "Zoë"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _is_subsequence(needle: str, haystack: str) -> int | None:
    """The span the letters of ``needle`` cover in order in ``haystack``; None if they don't."""
    start, at = -1, 0
    for char in needle:
        at = haystack.find(char, at)
        if at < 0:
            return None
        if start < 0:
            start = at
        at += 1
    return at - start


def rank(query: str, name: str) -> tuple[int, int, int] | None:
    """A sort key (smaller is better) for ``name`` against ``query``; None if it does not match.

    Tiers: 0 prefix, 1 the start of a later word, 2 a substring, 3 letters in order (a tighter
    span first). Within a tier an earlier match and a shorter name come first.
    """
    q = fold(query).strip()
    n = fold(name)
    if not q:
        return (0, 0, len(n))
    if n.startswith(q):
        return (0, 0, len(n))
    at = n.find(q)
    while at > 0:
        if not n[at - 1].isalnum():
            return (1, at, len(n))
        at = n.find(q, at + 1)
    at = n.find(q)
    if at >= 0:
        return (2, at, len(n))
    span = _is_subsequence(q.replace(" ", ""), n)
    if span is not None:
        return (3, span, len(n))
    return None


def ranked(query: str, candidates: list[Candidate]) -> list[Candidate]:
    """Matching candidates best first; ties keep the given order (most recent first)."""
    keyed = [(key, i, c) for i, c in enumerate(candidates)
             if (key := rank(query, c.name)) is not None]
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [c for _, _, c in keyed]


class QuickSwitcher(PopupPanel):
    """A popup list of contacts and rooms filtered as you type; ``chosen`` (kind, key)."""

    chosen = Signal(str, str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent, self.tr("Go to a room or contact"), width=440)
        self.setObjectName("quickSwitcher")
        self.edit.setAccessibleName(self.tr("Room or contact name"))
        self.list.setAccessibleName(self.tr("Rooms and contacts"))
        self._candidates: list[Candidate] = []
        self.edit.textChanged.connect(self._refresh)

    def open_with(self, candidates: list[Candidate]) -> None:
        """Show with these candidates (most recent first) and an empty line edit."""
        self._candidates = list(candidates)
        self.edit.clear()
        self._refresh()
        self.open()

    def shown(self) -> list[Candidate]:
        return [self.list.item(r).data(CANDIDATE_ROLE) for r in range(self.list.count())]

    def _refresh(self) -> None:
        query = self.edit.text()
        matches = ranked(query, self._candidates)[:MAX_SHOWN]
        self.list.clear()
        for candidate in matches:
            label = self.tr("Room") if candidate.kind == "room" else self.tr("Contact")
            text = f"{candidate.name}    — {label}"
            if candidate.detail:
                text += f", {candidate.detail}"
            item = QListWidgetItem(text)
            item.setData(CANDIDATE_ROLE, candidate)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{candidate.name}, {label}")
            self.list.addItem(item)
        if matches:
            self.list.setCurrentRow(0)
            self.set_status("")
        elif not self._candidates:
            self.set_status(self.tr("No rooms or contacts yet."))
        else:
            self.set_status(self.tr("Nothing matches “{text}”.").format(text=query.strip()))

    def activated_item(self, item: QListWidgetItem) -> None:
        candidate = item.data(CANDIDATE_ROLE)
        if isinstance(candidate, Candidate):
            self.chosen.emit(candidate.kind, candidate.key)
