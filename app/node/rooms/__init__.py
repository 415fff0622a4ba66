"""Group rooms: gossipsub for speed, history sync for completeness.

The package, by concept: ``service`` (``RoomService``: what the user does, the live path of a
post, handlers by payload kind), ``members`` (announces, the member list, reaching members),
``sync`` (``/kith/sync/2.0.0`` and 1.0.0, asking and answering) and ``live`` (what a joined room
holds while the node runs). What a member may make us spend is ``app.node.room_limits``.
"""

from app.node.rooms.service import RoomService, RoomServiceError
from app.node.rooms.sync import MAX_SYNC_PAGE_BYTES, SYNC2_PROTOCOL_ID, SYNC_PROTOCOL_ID

__all__ = ["MAX_SYNC_PAGE_BYTES", "SYNC2_PROTOCOL_ID", "SYNC_PROTOCOL_ID", "RoomService",
           "RoomServiceError"]
