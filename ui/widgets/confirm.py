"""Asking before something that cannot be undone (removing a contact, leaving a room).

A window-modal question, opened rather than executed so the event loop keeps running, with
Cancel as the default and the action itself as the one destructive button.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget


def confirm(parent: QWidget, previous: QMessageBox | None, title: str, text: str, action: str,
            confirmed: Callable[[], object]) -> QMessageBox:
    """Open the question; ``confirmed()`` runs if ``action`` is chosen. ``previous`` (the last
    box this caller opened) is deleted."""
    if previous is not None:
        previous.deleteLater()
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Cancel, parent)
    button = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.finished.connect(lambda _: confirmed() if box.clickedButton() is button else None)
    box.open()
    return box


def destructive_button(box: QMessageBox | None) -> QPushButton | None:
    """The confirming button of an open question (for keyboard paths and tests)."""
    if box is None:
        return None
    for button in box.buttons():
        if box.buttonRole(button) == QMessageBox.ButtonRole.DestructiveRole:
            return button if isinstance(button, QPushButton) else None
    return None
