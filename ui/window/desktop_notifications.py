"""Desktop notifications without a tray: the freedesktop notification service over D-Bus.

Many desktops (GNOME among them) have no system tray, so ``QSystemTrayIcon.showMessage`` has
nowhere to go. There the notification goes to ``org.freedesktop.Notifications`` on the session
bus, which every Linux desktop provides; clicking it ("default" action) opens the conversation.

PySide6's QtDBus turns a Python int into a D-Bus uint16 or int32, never the uint32 that
``Notify`` takes (its signature is ``susssasa{sv}i``), and the service refuses a call with the
wrong signature. So the call goes through ``QDBusInterface``: the interface is built from the
service's introspection, and invoking its ``Notify`` method with typed arguments (``Q_ARG``)
lets Qt marshal each one as the service declared it. The call waits for the service's answer
(it answers at once); ``CALL_TIMEOUT_MS`` bounds that wait should it hang.

Nothing here is required: without a session bus, or without the service, ``available`` is
False and Kith just does not notify.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict

from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, SLOT, QMetaObject, QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
CALL_TIMEOUT_MS = 1000
EXPIRE_MS = 6000
MAX_REMEMBERED = 64  # notifications whose click still opens their conversation
SOUND = "message-new-instant"  # the freedesktop sound theme's name for a new chat message
# Qt hands back the connection already open under a name, whatever address is asked for, so
# each notifier's connection gets a name no other one in the process had.
_CONNECTION_NUMBERS = itertools.count(1)


class DesktopNotifications(QObject):
    """``show`` a notification; ``activated(key)`` when the user clicks one.

    The bus is ``address``, else the session bus the environment names (its own connection,
    read when the first notification is shown).
    """

    activated = Signal(str)

    def __init__(self, address: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._address = address
        self._interface: QObject | None = None
        self._looked = False
        self._keys: OrderedDict[int, str] = OrderedDict()

    def available(self) -> bool:
        """A notification service answers (asked once, the first time)."""
        if not self._looked:
            self._looked = True
            self._interface = self._connect()
        return self._interface is not None

    def _connect(self) -> QObject | None:
        try:
            from PySide6.QtDBus import QDBusConnection, QDBusInterface
        except ImportError:  # a Qt built without D-Bus (Windows, macOS)
            return None
        address = self._address or os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        if address:
            bus = QDBusConnection.connectToBus(address, f"kith-notify-{next(_CONNECTION_NUMBERS)}")
        else:
            bus = QDBusConnection.sessionBus()
        if not bus.isConnected():
            log.info("no D-Bus session bus: desktop notifications are off")
            return None
        interface = QDBusInterface(SERVICE, PATH, INTERFACE, bus, self)
        if not interface.isValid():
            log.info("no desktop notification service on D-Bus: %s",
                     interface.lastError().message())
            return None
        interface.setTimeout(CALL_TIMEOUT_MS)
        for signal, slot in (("ActionInvoked", "_action_invoked(uint,QString)"),
                             ("NotificationClosed", "_closed(uint,uint)")):
            # The stub asks for bytes; PySide6 6.11 refuses them and takes SLOT()'s string.
            bus.connect(SERVICE, PATH, INTERFACE, signal, self,
                        SLOT(slot))  # type: ignore[call-overload]
        return interface

    def show(self, title: str, body: str, key: str, sound: bool) -> bool:
        """Show ``title`` and ``body``; a click opens ``key`` (``activated``). False if no
        service took it."""
        if not self.available() or self._interface is None:
            return False
        hints: dict[str, object] = {"desktop-entry": "kith", "category": "im.received"}
        if sound:
            hints["sound-name"] = SOUND
        else:
            hints["suppress-sound"] = True
        try:
            number = QMetaObject.invokeMethod(
                self._interface, "Notify", Qt.ConnectionType.DirectConnection,
                Q_RETURN_ARG("uint"),
                Q_ARG(str, "Kith"), Q_ARG("uint", 0), Q_ARG(str, "kith"), Q_ARG(str, title),
                Q_ARG(str, body), Q_ARG("QStringList", ["default", self.tr("Open")]),
                Q_ARG("QVariantMap", hints), Q_ARG(int, EXPIRE_MS),
            )
        except RuntimeError:
            log.warning("the desktop notification could not be sent", exc_info=True)
            return False
        if not isinstance(number, int) or number <= 0:
            log.warning("the desktop notification service did not take the notification")
            return False
        self._keys[number] = key
        while len(self._keys) > MAX_REMEMBERED:
            self._keys.popitem(last=False)
        return True

    @Slot("uint", str)
    def _action_invoked(self, number: int, action: str) -> None:
        key = self._keys.get(number)
        if key is not None and action == "default":
            self.activated.emit(key)

    @Slot("uint", "uint")
    def _closed(self, number: int, _reason: int) -> None:
        self._keys.pop(number, None)
