"""File ▸ Settings… (Ctrl+,): everything a person may change, in five tabs, saved together.

Settings live in the profile and the network thread is their one writer, so the dialog reads
and writes them through the client: ``update_settings`` for most, ``set_file_settings`` for the
download folder and auto-accept (the file service owns their validation, in one place). Values
are checked here first with the same ``Settings`` rules, so a mistake is named next to the
field without a round trip. What can apply at once does (your name, theme, notifications,
the chat list's layout); the network tab says plainly that its changes wait for the next start.

The network tab speaks of what a person wants to know, how others reach you now (directly,
through a relay, on this network only), and keeps the multiaddresses of the listen port, the
relays and the DHT's bootstrap peers under "Advanced".

``ui.window.window_settings`` opens it from the window and applies what was saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import MAX_NAME_LENGTH
from app.core.records import short_peer_id
from app.store.profile import MAX_MAILBOXES, MAX_RELAYS, Settings
from ui.files.file_actions import default_download_dir
from ui.identity.node_state import NodeState, Presence
from ui.identity.presence import PresenceIndicator
from ui.identity.reachability import as_tooltip, own_tooltip
from ui.style import palette as pal

if TYPE_CHECKING:
    from app.client import KithClient
    from app.core.events import MailboxStatus
    from ui.bridge import TaskRunner

MB = 1_000_000
MAX_AUTO_MB = 100_000  # the auto-accept spin box's top, in MB

PROFILE_TAB, FILES_TAB, NETWORK_TAB, NOTIFICATIONS_TAB, APPEARANCE_TAB = range(5)
_TAB_OF_FIELD = {
    "display_name": PROFILE_TAB, "download_dir": FILES_TAB,
    "auto_accept_verified_bytes": FILES_TAB, "listen_port": NETWORK_TAB, "relays": NETWORK_TAB,
    "bootstrap": NETWORK_TAB, "serve_relay": NETWORK_TAB, "relay_contacts_only": NETWORK_TAB,
    "serve_dht": NETWORK_TAB, "lan_discovery": NETWORK_TAB, "serve_mailbox": NETWORK_TAB,
    "mailboxes": NETWORK_TAB,
    "notifications": NOTIFICATIONS_TAB, "notification_sound": NOTIFICATIONS_TAB,
    "read_receipts": NOTIFICATIONS_TAB, "typing_indicators": NOTIFICATIONS_TAB,
    "theme": APPEARANCE_TAB, "one_chat_list": APPEARANCE_TAB, "close_to_tray": APPEARANCE_TAB,
}
_THEME_LABELS = (("system", "Same as the system"), ("light", "Light"), ("dark", "Dark"))


def _plain(error: Exception) -> str:
    text = str(error)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


class SettingsDialog(QDialog):
    """Profile, Files, Network, Notifications, Appearance; ``saved(Settings)`` once stored."""

    saved = Signal(object)

    def __init__(self, runner: TaskRunner, client: KithClient | None,
                 parent: QWidget | None = None, *, state: NodeState | None = None,
                 has_tray: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self.setMinimumWidth(520)
        self.runner = runner
        self.state = state
        self.has_tray = has_tray
        self.client: KithClient | None = None
        self.loaded: Settings | None = None
        self.loaded_folder = ""
        self.folder_dialog: QFileDialog | None = None
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._profile_tab(), self.tr("&Profile"))
        self.tabs.addTab(self._files_tab(), self.tr("&Files"))
        self.tabs.addTab(self._network_tab(), self.tr("&Network"))
        self.tabs.addTab(self._notifications_tab(), self.tr("N&otifications"))
        self.tabs.addTab(self._appearance_tab(), self.tr("&Appearance"))
        layout.addWidget(self.tabs)
        self.error = QLabel(self)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        palette = self.error.palette()
        palette.setColor(self.error.foregroundRole(), pal.ERROR)
        self.error.setPalette(palette)
        self.error.hide()
        layout.addWidget(self.error)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.set_client(client)

    # -- pages ------------------------------------------------------------------------------

    def _profile_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.name_edit = QLineEdit(page)
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        self.name_edit.setAccessibleName(self.tr("Display name"))
        label = QLabel(self.tr("Display &name:"), page)
        label.setBuddy(self.name_edit)
        form.addRow(label, self.name_edit)
        hint = QLabel(self.tr("What your contacts and rooms see. It changes for them the next "
                              "time they hear from you."), page)
        hint.setWordWrap(True)
        form.addRow(hint)
        return page

    def _files_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.folder_edit = QLineEdit(page)
        self.folder_edit.setPlaceholderText(default_download_dir())
        self.folder_edit.setAccessibleName(self.tr("Download folder"))
        self.choose_button = QPushButton(self.tr("&Choose…"), page)
        self.choose_button.clicked.connect(self.choose_folder)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.choose_button)
        label = QLabel(self.tr("&Download folder:"), page)
        label.setBuddy(self.folder_edit)
        form.addRow(label, row)
        self.auto_spin = QSpinBox(page)
        self.auto_spin.setRange(0, MAX_AUTO_MB)
        self.auto_spin.setSuffix(self.tr(" MB"))
        self.auto_spin.setSpecialValueText(self.tr("Off"))
        self.auto_spin.setAccessibleName(self.tr("Auto-accept limit"))
        auto_label = QLabel(self.tr("&Auto-accept from verified contacts up to:"), page)
        auto_label.setBuddy(self.auto_spin)
        form.addRow(auto_label, self.auto_spin)
        hint = QLabel(self.tr(
            "Files from anyone else, and larger files, always wait for you to accept them."), page)
        hint.setWordWrap(True)
        form.addRow(hint)
        return page

    def _network_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        reach_title = QLabel(self.tr("How others reach you now:"), page)
        layout.addWidget(reach_title)
        self.reach_status = PresenceIndicator(page)
        layout.addWidget(self.reach_status)
        self.reach_hint = QLabel(page)
        self.reach_hint.setWordWrap(True)
        self.reach_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.reach_hint)
        self.lan_check = QCheckBox(self.tr("Find contacts on the &local network"), page)
        self.lan_check.setToolTip(as_tooltip(self.tr(
            "Kith announces itself on this network (home, office) so people nearby see you "
            "under People Nearby, and finds contacts here without the internet.")))
        layout.addWidget(self.lan_check)
        self.serve_relay_check = QCheckBox(self.tr("&Serve as a relay for others"), page)
        self.serve_relay_check.setToolTip(as_tooltip(self.tr(
            "On a computer others can reach directly: keep a place for contacts behind home "
            "routers, so they can be reached through you. The relay passes on only encrypted "
            "data.")))
        layout.addWidget(self.serve_relay_check)
        self.relay_contacts_check = QCheckBox(self.tr("Only for my &contacts"), page)
        self.relay_contacts_check.setToolTip(as_tooltip(self.tr(
            "Only your contacts can hold a slot on your relay, so it only carries traffic "
            "to them (from anyone they talk to). Strangers are refused.")))
        self.relay_contacts_check.setEnabled(False)
        self.serve_relay_check.toggled.connect(self.relay_contacts_check.setEnabled)
        relay_contacts_row = QHBoxLayout()
        relay_contacts_row.setContentsMargins(24, 0, 0, 0)
        relay_contacts_row.addWidget(self.relay_contacts_check)
        layout.addLayout(relay_contacts_row)
        self._mailbox_rows(page, layout)

        self.advanced_button = QToolButton(page)
        self.advanced_button.setText(self.tr("&Advanced"))
        self.advanced_button.setCheckable(True)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced_button)
        self.advanced = QWidget(page)
        form = QFormLayout(self.advanced)
        form.setContentsMargins(16, 0, 0, 0)
        self.port_spin = QSpinBox(self.advanced)
        self.port_spin.setRange(0, 65535)
        self.port_spin.setSpecialValueText(self.tr("Any free port"))
        self.port_spin.setAccessibleName(self.tr("Listen port"))
        port_label = QLabel(self.tr("Listen &port:"), self.advanced)
        port_label.setBuddy(self.port_spin)
        form.addRow(port_label, self.port_spin)
        self.relays_edit = QPlainTextEdit(self.advanced)
        self.relays_edit.setTabChangesFocus(True)
        self.relays_edit.setAccessibleName(self.tr("Relays"))
        self.relays_edit.setPlaceholderText("/ip4/203.0.113.5/tcp/4001/p2p/12D3KooW…")
        self.relays_edit.setFixedHeight(self.fontMetrics().height() * 5)
        relays_label = QLabel(self.tr("&Relays that keep a place for you (multiaddresses, one a "
                                      "line, at most {count}):").format(count=MAX_RELAYS),
                              self.advanced)
        relays_label.setWordWrap(True)
        relays_label.setBuddy(self.relays_edit)
        form.addRow(relays_label)
        form.addRow(self.relays_edit)
        self.bootstrap_edit = QPlainTextEdit(self.advanced)
        self.bootstrap_edit.setTabChangesFocus(True)
        self.bootstrap_edit.setAccessibleName(self.tr("DHT bootstrap peers"))
        self.bootstrap_edit.setPlaceholderText("/ip4/198.51.100.7/tcp/4001/p2p/12D3KooW…")
        self.bootstrap_edit.setFixedHeight(self.fontMetrics().height() * 4)
        self.bootstrap_edit.setToolTip(as_tooltip(self.tr(
            "Any Kith (or libp2p DHT peer) you trust to be online. Kith publishes your current "
            "addresses through them and finds contacts who moved. None are built in; with none "
            "listed Kith sends no DHT messages.")))
        bootstrap_label = QLabel(
            self.tr("&Bootstrap peers for finding contacts who moved (DHT; one multiaddress a "
                    "line):"), self.advanced)
        bootstrap_label.setWordWrap(True)
        bootstrap_label.setBuddy(self.bootstrap_edit)
        form.addRow(bootstrap_label)
        form.addRow(self.bootstrap_edit)
        self.serve_dht_check = QCheckBox(
            self.tr("Serve the &DHT for others (be their bootstrap peer)"), self.advanced)
        self.serve_dht_check.setToolTip(as_tooltip(self.tr(
            "Answer other peers' DHT lookups and keep their signed address records (1 MiB at "
            "most). Off: Kith only asks the DHT, through your bootstrap peers.")))
        form.addRow(self.serve_dht_check)
        self.advanced.hide()
        layout.addWidget(self.advanced)
        layout.addStretch(1)
        self.restart_note = QLabel(self.tr("Changes on this page apply after Kith restarts."),
                                   page)
        self.restart_note.setWordWrap(True)
        self.restart_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.restart_note)
        self._show_reachability()
        if self.state is not None:
            self.state.changed.connect(self._show_reachability)
        return page

    def _mailbox_rows(self, page: QWidget, layout: QVBoxLayout) -> None:
        """Serving a mailbox for contacts, and the mailboxes that keep our own messages."""
        self.serve_mailbox_check = QCheckBox(
            self.tr("&Keep messages for my contacts while they are offline"), page)
        self.serve_mailbox_check.setToolTip(as_tooltip(self.tr(
            "Be a mailbox for contacts who ask: hold their messages, sealed, until they come "
            "back (at most 10,000 messages and 200 MB each, for 30 days). You cannot read them; "
            "you see who wrote to whom, when, and how much.")))
        layout.addWidget(self.serve_mailbox_check)
        self.mailboxes_edit = QPlainTextEdit(page)
        self.mailboxes_edit.setTabChangesFocus(True)
        self.mailboxes_edit.setAccessibleName(self.tr("My mailboxes"))
        self.mailboxes_edit.setPlaceholderText("/ip4/203.0.113.5/tcp/4001/p2p/12D3KooW…")
        self.mailboxes_edit.setFixedHeight(self.fontMetrics().height() * 4)
        self.mailboxes_edit.setToolTip(as_tooltip(self.tr(
            "A Kith that keeps your messages while you are offline: your own always-on Kith, or "
            "a contact's (choose Use as My Mailbox on the contact). It must have you as a "
            "contact.")))
        label = QLabel(self.tr("&Mailboxes that keep my messages while I am offline (one a "
                               "line, at most {count}):").format(count=MAX_MAILBOXES), page)
        label.setWordWrap(True)
        label.setBuddy(self.mailboxes_edit)
        layout.addWidget(label)
        layout.addWidget(self.mailboxes_edit)
        self.mailbox_status = QLabel(page)
        self.mailbox_status.setWordWrap(True)
        self.mailbox_status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.mailbox_status)

    def show_mailboxes(self, status: MailboxStatus) -> None:
        """Whether each of our mailboxes is reachable now, and what we hold for others."""
        lines = []
        for mine in status.mine:
            state = (self.tr("reachable, keeps your messages") if mine.registered
                     else self.tr("reachable, has not accepted you yet") if mine.reachable
                     else self.tr("not reachable now"))
            lines.append(f"{short_peer_id(mine.mailbox)}: {state}")
        if status.serving:
            lines.append(self.tr("You keep {held} message(s) for {users} contact(s).").format(
                held=status.held, users=status.users))
        self.mailbox_status.setText("\n".join(lines))

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _show_reachability(self) -> None:
        state = self.state
        if state is None:
            self.reach_status.set_presence(Presence.OFFLINE)
            self.reach_hint.setText(self.tr("Kith is not connected to the network."))
            return
        self.reach_status.set_presence(state.presence, state.reachability)
        self.reach_hint.setText(own_tooltip(state.reachability, state.relays, state.reach_addrs,
                                            state.presence is Presence.ONLINE))

    def _notifications_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        self.notify_check = QCheckBox(
            self.tr("&Show a notification when a message arrives while Kith is in the "
                    "background"), page)
        layout.addWidget(self.notify_check)
        self.sound_check = QCheckBox(self.tr("&Play a sound with each notification"), page)
        layout.addWidget(self.sound_check)
        self.notify_check.toggled.connect(self.sound_check.setEnabled)
        hint = QLabel(self.tr(
            "Unread counts in the tray and the title stay either way. A muted conversation "
            "never notifies: right-click it in the list and choose Mute Notifications."), page)
        hint.setWordWrap(True)
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(hint)
        self.receipts_check = QCheckBox(self.tr("Send &read receipts"), page)
        self.receipts_check.setToolTip(self.tr(
            "Off: contacts do not see when you read their messages, and you do not see when "
            "they read yours."))
        layout.addWidget(self.receipts_check)
        self.typing_check = QCheckBox(self.tr("Show when I am &typing"), page)
        self.typing_check.setToolTip(self.tr(
            "Off: nobody sees you typing, and you do not see others typing."))
        layout.addWidget(self.typing_check)
        layout.addStretch(1)
        return page

    def _appearance_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.theme_combo = QComboBox(page)
        for value, text in _THEME_LABELS:
            self.theme_combo.addItem(QCoreApplication.translate("SettingsDialog", text), value)
        self.theme_combo.setAccessibleName(self.tr("Theme"))
        label = QLabel(self.tr("&Theme:"), page)
        label.setBuddy(self.theme_combo)
        form.addRow(label, self.theme_combo)
        self.one_list_check = QCheckBox(
            self.tr("Show rooms and contacts in &one list, the most recent first"), page)
        form.addRow(self.one_list_check)
        self.tray_check = QCheckBox(
            self.tr("&Keep Kith running in the tray when the window is closed"), page)
        form.addRow(self.tray_check)
        if not self.has_tray:
            self.tray_check.setEnabled(False)
            no_tray = QLabel(self.tr("This desktop shows no tray icons, so closing the window "
                                     "quits Kith."), page)
            no_tray.setWordWrap(True)
            no_tray.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            form.addRow(no_tray)
        return page

    def choose_folder(self) -> QFileDialog:
        dialog = QFileDialog(self, self.tr("Download Folder"))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setDirectory(self.folder_edit.text() or default_download_dir())
        dialog.fileSelected.connect(self.folder_edit.setText)
        dialog.finished.connect(lambda _: dialog.deleteLater())
        self.folder_dialog = dialog
        dialog.open()
        return dialog

    # -- loading ----------------------------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        self.client = client
        self.save_button.setEnabled(False)
        if client is None:
            self.note.setText(self.tr("Kith is not online; settings can be changed once it is."))
            return
        self.note.clear()
        self.runner.run(self._load(client), self.tr("Loading the settings"))

    async def _load(self, client: KithClient) -> None:
        settings = await client.settings()
        folder, _ = await client.file_settings()
        mailboxes = await client.mailbox_status()
        if client is not self.client:
            return
        self.show_settings(settings, folder)
        self.show_mailboxes(mailboxes)
        self.save_button.setEnabled(True)

    def show_settings(self, settings: Settings, folder: str) -> None:
        self.loaded = settings
        self.loaded_folder = folder
        self.name_edit.setText(settings.display_name)
        self.folder_edit.setText(folder)
        self.auto_spin.setValue(min(MAX_AUTO_MB, round(settings.auto_accept_verified_bytes / MB)))
        self.port_spin.setValue(settings.listen_port)
        self.relays_edit.setPlainText("\n".join(settings.relays))
        self.bootstrap_edit.setPlainText("\n".join(settings.bootstrap))
        self.serve_relay_check.setChecked(settings.serve_relay)
        self.relay_contacts_check.setChecked(settings.relay_contacts_only)
        self.serve_dht_check.setChecked(settings.serve_dht)
        self.serve_mailbox_check.setChecked(settings.serve_mailbox)
        self.mailboxes_edit.setPlainText("\n".join(settings.mailboxes))
        self.lan_check.setChecked(settings.lan_discovery)
        self.notify_check.setChecked(settings.notifications)
        self.sound_check.setChecked(settings.notification_sound)
        self.sound_check.setEnabled(settings.notifications)
        self.receipts_check.setChecked(settings.read_receipts)
        self.typing_check.setChecked(settings.typing_indicators)
        self.one_list_check.setChecked(settings.one_chat_list)
        self.tray_check.setChecked(settings.close_to_tray and self.has_tray)
        index = self.theme_combo.findData(settings.theme)
        self.theme_combo.setCurrentIndex(max(0, index))

    def is_loaded(self) -> bool:
        return self.loaded is not None

    # -- saving -----------------------------------------------------------------------------

    def changes(self) -> dict[str, Any]:
        """What differs from the loaded settings (files apart: they have their own call)."""
        loaded = self.loaded or Settings()
        wanted: dict[str, Any] = {
            "display_name": self.name_edit.text(),
            "listen_port": self.port_spin.value(),
            "relays": self.relays_edit.toPlainText().splitlines(),
            "bootstrap": self.bootstrap_edit.toPlainText().splitlines(),
            "serve_relay": self.serve_relay_check.isChecked(),
            "relay_contacts_only": self.relay_contacts_check.isChecked(),
            "serve_dht": self.serve_dht_check.isChecked(),
            "serve_mailbox": self.serve_mailbox_check.isChecked(),
            "mailboxes": self.mailboxes_edit.toPlainText().splitlines(),
            "lan_discovery": self.lan_check.isChecked(),
            "notifications": self.notify_check.isChecked(),
            "notification_sound": self.sound_check.isChecked(),
            "read_receipts": self.receipts_check.isChecked(),
            "typing_indicators": self.typing_check.isChecked(),
            "theme": self.theme_combo.currentData(),
            "one_chat_list": self.one_list_check.isChecked(),
        }
        if self.has_tray:  # without a tray the choice cannot be made: a saved one is kept
            wanted["close_to_tray"] = self.tray_check.isChecked()
        current = loaded.to_json()
        out = {}
        for name, value in wanted.items():
            if name in ("relays", "bootstrap", "mailboxes"):
                value = [line.strip() for line in value if line.strip()]
            if name == "display_name" and value.strip() == current[name]:
                continue
            if current[name] != value:
                out[name] = value
        return out

    def show_error(self, message: str, tab: int | None = None) -> None:
        self.error.setText(message)
        self.error.show()
        if tab is not None:
            self.tabs.setCurrentIndex(tab)
        self.save_button.setEnabled(True)

    def _check(self, changes: dict[str, Any]) -> Settings | None:
        loaded = self.loaded or Settings()
        for name, value in changes.items():  # one at a time, to name the tab that is wrong
            try:
                loaded.with_changes(**{name: value})
            except ValueError as exc:
                if name == "display_name":
                    message = self.tr("Your name cannot be empty.")
                else:
                    message = _plain(exc)
                self.show_error(message, _TAB_OF_FIELD.get(name))
                return None
        return loaded.with_changes(**changes)

    def save(self) -> None:
        client = self.client
        if client is None or self.loaded is None:
            return
        changes = self.changes()
        if self._check(changes) is None:
            return
        self.error.hide()
        folder = self.folder_edit.text().strip()
        auto_bytes = self.auto_spin.value() * MB
        files = None
        loaded_auto = min(MAX_AUTO_MB, round(self.loaded.auto_accept_verified_bytes / MB)) * MB
        if folder != self.loaded_folder or auto_bytes != loaded_auto:
            files = (folder, auto_bytes)
        self.save_button.setEnabled(False)
        self.runner.run(self._save(client, changes, files), self.tr("Saving the settings"))

    async def _save(self, client: KithClient, changes: dict[str, Any],
                    files: tuple[str, int] | None) -> None:
        if files is not None:
            try:
                await client.set_file_settings(*files)
            except (ValueError, OSError) as exc:
                self.show_error(_plain(exc), FILES_TAB)
                return
        try:
            settings = await client.update_settings(**changes) if changes else (
                await client.settings())
        except ValueError as exc:
            self.show_error(_plain(exc))
            return
        self.saved.emit(settings)
        self.accept()
