"""Handlers by payload kind: who does what a direct message or a room post of each kind means.

``DirectMessages`` and ``RoomService`` each hold one ``PayloadKinds``. They register their own
kind (text) when they are built; every other service registers its kinds when the node is
wired (``KithNode.run``): file offers and file controls by ``FileTransfers``, and so will
reactions, edits, receipts or room membership by theirs. A kind is registered once; a kind the
codec accepts but nobody registered is refused like an unknown one (direct messages) or kept
unshown (room posts), so a node never acts on what it does not understand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

H = TypeVar("H")


class PayloadKinds(Generic[H]):
    """A handler per kind number, for one protocol (``what``: for messages and logs)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._handlers: dict[int, H] = {}

    def register(self, kind: int, handler: H) -> None:
        """Give ``kind`` its handler; a kind has one handler, registered once."""
        if kind in self._handlers:
            raise ValueError(f"{self.what} kind {kind} already has a handler")
        self._handlers[kind] = handler

    def get(self, kind: int) -> H | None:
        return self._handlers.get(kind)

    def __iter__(self) -> Iterator[int]:
        """The kinds that have a handler, in order."""
        return iter(sorted(self._handlers))
