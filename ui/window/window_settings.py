"""Settings…, Your Identity… and Export Profile… in the main window, and applying what they save.

The settings dialog reads and writes through the client; this part opens it (and the identity
page and the export dialog) from the window's menus, and applies at once what needs no restart:
the theme, notifications on or off, and, at start-up, the window's saved size and place.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QPalette

from app.store.profile import Settings
from ui.style.resources import tinted_icon
from ui.style.theme import apply_theme

if TYPE_CHECKING:  # dialogs are imported when first opened: a lighter window at start
    from app.client import KithClient
    from ui.identity.identity_page import ExportProfileDialog, IdentityPage
    from ui.settings.settings_dialog import SettingsDialog
    from ui.window.frame import WindowFrame


class WindowSettings(QObject):
    """Settings…, Your Identity… and Export Profile… in a window, and what they apply."""

    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self.client: KithClient | None = None
        self.profile_dir: Path | None = None
        self.dialog: SettingsDialog | None = None
        self.identity_page: IdentityPage | None = None
        self.export_dialog: ExportProfileDialog | None = None
        self.last_conversation = ""  # opened again once the contacts and rooms are loaded

        self.settings_action = QAction(self.tr("&Settings…"), window)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(lambda: self.show_settings())
        self.export_action = QAction(self.tr("&Export Profile…"), window)
        self.export_action.triggered.connect(lambda: self.show_export())
        self.export_action.setEnabled(False)
        self.identity_page_action = QAction(self.tr("Your &Identity…"), window)
        self.identity_page_action.setShortcut(QKeySequence("Ctrl+I"))
        self.identity_page_action.setToolTip(self.tr(
            "Your invite, your half of the safety number, exporting your profile (Ctrl+I)"))
        self.identity_page_action.triggered.connect(lambda: self.show_identity())
        window.header.set_you_action(self.identity_page_action)
        window.palette_changed.connect(self._tint)
        self._tint()

    def _tint(self) -> None:
        text = self.window.palette().color(QPalette.ColorRole.WindowText)
        self.identity_page_action.setIcon(tinted_icon("user", text))

    # -- applying ---------------------------------------------------------------------------

    def restore(self, settings: Settings, profile_dir: Path) -> None:
        """At start, before the window shows: its size and place, the conversation that was
        open, and what ``apply`` applies."""
        self.profile_dir = profile_dir
        self.export_action.setEnabled(True)
        self.last_conversation = settings.last_conversation
        self._apply_window(settings)
        if settings.window_geometry:
            try:
                data = base64.b64decode(settings.window_geometry, validate=True)
            except ValueError:
                return
            self.window.restoreGeometry(QByteArray(data))

    def geometry(self) -> str:
        """What ``restore`` takes back: ``saveGeometry`` as base64 text."""
        return base64.b64encode(bytes(self.window.saveGeometry().data())).decode("ascii")

    def window_state(self) -> dict[str, str]:
        """What to save when the window closes: its size and place, the open conversation."""
        return {"window_geometry": self.geometry(),
                "last_conversation": self.window.conversation.conversation_key or ""}

    def apply(self, settings: Settings) -> None:
        """Saved in the dialog: what applies without a restart does so now."""
        apply_theme(settings.theme)
        self._apply_window(settings)

    def _apply_window(self, settings: Settings) -> None:
        tray = self.window.tray
        tray.enabled = settings.notifications
        tray.sound = settings.notification_sound
        self.window.keep_in_tray = settings.close_to_tray
        self.window.sidebar.set_one_list(settings.one_chat_list)

    # -- dialogs ----------------------------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        self.client = client
        if self.dialog is not None:
            self.dialog.set_client(client)

    def show_settings(self, tab: int | None = None) -> SettingsDialog:
        """The Settings dialog, opened at ``tab`` (default: the profile's) when not open yet."""
        if self.dialog is None:
            from ui.settings.settings_dialog import PROFILE_TAB, SettingsDialog
            dialog = SettingsDialog(self.window.runner, self.client, self.window,
                                    state=self.window.state, has_tray=self.window.tray.available)
            dialog.saved.connect(self.apply)
            dialog.finished.connect(lambda _: self._forget(dialog))
            dialog.tabs.setCurrentIndex(PROFILE_TAB if tab is None else tab)
            self.dialog = dialog
        self.dialog.open()
        self.dialog.raise_()
        return self.dialog

    def _forget(self, dialog: SettingsDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def show_identity(self) -> IdentityPage:
        if self.identity_page is None:
            from ui.identity.identity_page import IdentityPage
            page = IdentityPage(self.window.state, self.window)
            page.export_requested.connect(lambda: self.show_export())
            page.finished.connect(lambda _: self._forget_identity(page))
            self.identity_page = page
        self.identity_page.open()
        self.identity_page.raise_()
        self.identity_page.copy_button.setFocus(Qt.FocusReason.OtherFocusReason)
        return self.identity_page

    def _forget_identity(self, page: IdentityPage) -> None:
        if self.identity_page is page:
            self.identity_page = None
        page.deleteLater()

    def show_export(self) -> ExportProfileDialog | None:
        if self.profile_dir is None:
            return None
        if self.export_dialog is None:
            from ui.identity.identity_page import ExportProfileDialog
            dialog = ExportProfileDialog(self.profile_dir, self.window.runner, self.window)
            dialog.finished.connect(lambda _: self._forget_export(dialog))
            self.export_dialog = dialog
        self.export_dialog.open()
        return self.export_dialog

    def _forget_export(self, dialog: ExportProfileDialog) -> None:
        if self.export_dialog is dialog:
            self.export_dialog = None
        dialog.deleteLater()
