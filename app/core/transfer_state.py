"""Where a file transfer stands, and the one table of how it may move on.

A transfer is in one ``TransferState``. It moves by a ``Step``: something the user did (accept,
pause, resume, decline, cancel), the other side said (decline, cancel, fail, complete, as file
controls) or the download itself found (it failed, or it is complete). ``TRANSITIONS`` says,
for each step and direction, from which states it may be taken; the node refuses any other
(``TransferStore.move`` checks it in the same SQL statement that makes the move), and the window
reads what a state allows from here instead of deciding for itself.

    incoming:  offered --accept--> receiving --complete--> complete
                  |                 |    ^
                  |             pause  resume
                  |                 v    |
                  |                 paused
               decline --> declined          fail (the download), stop (the sender) -> failed
               cancel (from offered, receiving, paused, failed) -> cancelled
               accept (from failed) -> receiving: a retry, from its verified part

    outgoing:  offered --> complete (the receiver has it), declined, cancelled, failed (the
               receiver refused the offer, or the file changed on disk). A file shared in a room
               stays offered: every member may fetch it.

The values are the strings stored in SQLite and shown by ``kith node``.
"""

from __future__ import annotations

from enum import StrEnum


class TransferState(StrEnum):
    OFFERED = "offered"      # outgoing: served to whoever may fetch it; incoming: an answer due
    RECEIVING = "receiving"  # incoming: being fetched (or waiting for a source)
    PAUSED = "paused"        # incoming: stopped by the user; the verified part is kept
    COMPLETE = "complete"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    FAILED = "failed"        # ``reason`` says why; an incoming one may be tried again

    @property
    def final(self) -> bool:
        """Nothing can happen to it any more, in either direction."""
        return self in _FINAL

    @property
    def moving(self) -> bool:
        """Bytes may be moving: a download running, or an offer being served (its speed)."""
        return self in (TransferState.OFFERED, TransferState.RECEIVING)

    @property
    def started(self) -> bool:
        """A download under way, running or paused: part of the file is here."""
        return self in (TransferState.RECEIVING, TransferState.PAUSED)


class Step(StrEnum):
    ACCEPT = "accept"
    PAUSE = "pause"
    RESUME = "resume"
    DECLINE = "decline"
    CANCEL = "cancel"
    FAIL = "fail"          # incoming: the download failed; outgoing: the offer cannot be served
    STOP = "stop"          # incoming: the sender stopped serving it (a "fail" control)
    COMPLETE = "complete"  # incoming: verified and named; outgoing: the receiver has it


_S = TransferState

# (step, outgoing) -> (the states it may be taken from, the state it leads to)
TRANSITIONS: dict[tuple[Step, bool], tuple[frozenset[TransferState], TransferState]] = {
    (Step.ACCEPT, False): (frozenset({_S.OFFERED, _S.FAILED}), _S.RECEIVING),
    (Step.PAUSE, False): (frozenset({_S.RECEIVING}), _S.PAUSED),
    (Step.RESUME, False): (frozenset({_S.PAUSED}), _S.RECEIVING),
    (Step.DECLINE, False): (frozenset({_S.OFFERED}), _S.DECLINED),
    (Step.CANCEL, False): (frozenset({_S.OFFERED, _S.RECEIVING, _S.PAUSED, _S.FAILED}),
                           _S.CANCELLED),
    (Step.FAIL, False): (frozenset({_S.RECEIVING}), _S.FAILED),
    (Step.STOP, False): (frozenset({_S.OFFERED, _S.RECEIVING, _S.PAUSED}), _S.FAILED),
    (Step.COMPLETE, False): (frozenset({_S.RECEIVING}), _S.COMPLETE),
    (Step.DECLINE, True): (frozenset({_S.OFFERED}), _S.DECLINED),
    (Step.CANCEL, True): (frozenset({_S.OFFERED}), _S.CANCELLED),
    (Step.FAIL, True): (frozenset({_S.OFFERED}), _S.FAILED),
    (Step.COMPLETE, True): (frozenset({_S.OFFERED}), _S.COMPLETE),
}
_FINAL = frozenset(s for s in TransferState
                   if not any(s in froms for froms, _ in TRANSITIONS.values()))


def sources(step: Step, outgoing: bool) -> frozenset[TransferState]:
    """The states ``step`` may be taken from (none: not a step of that direction)."""
    found = TRANSITIONS.get((step, outgoing))
    return found[0] if found is not None else frozenset()


def target(step: Step, outgoing: bool) -> TransferState:
    """The state ``step`` leads to; ``ValueError`` if it is not a step of that direction."""
    found = TRANSITIONS.get((step, outgoing))
    if found is None:
        raise ValueError(f"{'an outgoing' if outgoing else 'an incoming'} transfer has no "
                         f"step {step}")
    return found[1]


def can(state: TransferState, step: Step, outgoing: bool) -> bool:
    return state in sources(step, outgoing)


def after(state: TransferState, step: Step, outgoing: bool) -> TransferState | None:
    """The state ``step`` moves ``state`` to; None if it may not be taken from there."""
    return target(step, outgoing) if can(state, step, outgoing) else None
