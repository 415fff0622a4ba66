"""The transfer state machine: one table (app.core.transfer_state), kept by the store in SQL,
announced by the events and read by the window."""

from __future__ import annotations

import sqlite3

import pytest

from app.core import events
from app.core import files as fc
from app.core.records import TransferInfo
from app.core.transfer_state import (
    TRANSITIONS,
    Step,
    TransferState,
    after,
    can,
    sources,
    target,
)
from app.store.transfers import TransferStore
from ui.files.file_actions import FileAction, actions_for

S = TransferState


def _offer() -> fc.FileOffer:
    return fc.FileOffer(fc.new_transfer_id(), "a.bin", 10, 1 << 20, b"\x00" * 32,
                        "application/octet-stream")


def _in_state(store: TransferStore, state: TransferState, outgoing: bool) -> bytes:
    """A transfer put in ``state`` the way the node gets it there (offer, accept, ...)."""
    offer = _offer()
    assert store.add(offer, outgoing=outgoing, peer_id="peer", room_id=None)
    tid = offer.transfer
    path_to = {
        S.OFFERED: [], S.RECEIVING: [Step.ACCEPT], S.PAUSED: [Step.ACCEPT, Step.PAUSE],
        S.COMPLETE: [Step.COMPLETE] if outgoing else [Step.ACCEPT, Step.COMPLETE],
        S.DECLINED: [Step.DECLINE], S.CANCELLED: [Step.CANCEL], S.FAILED: [Step.FAIL]
        if outgoing else [Step.ACCEPT, Step.FAIL],
    }[state]
    for step in path_to:
        if step is Step.ACCEPT:
            store.start_receiving(tid, "/tmp", "/tmp/a.bin.part")
        else:
            assert store.move(tid, step, outgoing=outgoing)
    got = store.get(tid)
    assert got is not None and got.state is state
    return tid


@pytest.mark.parametrize("outgoing", [False, True], ids=["incoming", "outgoing"])
def test_the_store_takes_exactly_the_steps_of_the_table(
        db: sqlite3.Connection, outgoing: bool) -> None:
    store = TransferStore(db)
    for state in TransferState:
        if outgoing and state in (S.RECEIVING, S.PAUSED):
            continue  # an outgoing transfer is never in these
        for step in Step:
            tid = _in_state(store, state, outgoing)
            moved = store.move(tid, step, outgoing=outgoing, reason="why")
            got = store.get(tid)
            assert got is not None
            assert moved == can(state, step, outgoing), (state, step)
            assert got.state is (after(state, step, outgoing) or state), (state, step)
            assert isinstance(got.state, TransferState)


def test_a_step_is_checked_against_the_transfers_own_direction(db: sqlite3.Connection) -> None:
    store = TransferStore(db)
    tid = _in_state(store, S.OFFERED, outgoing=True)
    assert not store.move(tid, Step.PAUSE, outgoing=True)  # not a step of an offer we made
    assert not store.move(tid, Step.CANCEL, outgoing=False)  # the row is outgoing
    assert not store.move(b"\x01" * fc.TRANSFER_ID_SIZE, Step.CANCEL, outgoing=True)


def test_the_table_is_consistent() -> None:
    for (step, outgoing), (froms, to) in TRANSITIONS.items():
        assert froms, step
        assert to not in froms, (step, to)
        assert sources(step, outgoing) == froms and target(step, outgoing) is to
    # Final means no step leads out, in either direction; failed can be tried again.
    assert {s for s in S if s.final} == {S.COMPLETE, S.DECLINED, S.CANCELLED}
    with pytest.raises(ValueError):
        target(Step.PAUSE, outgoing=True)
    assert after(S.COMPLETE, Step.CANCEL, outgoing=False) is None
    assert after(S.FAILED, Step.ACCEPT, outgoing=False) is S.RECEIVING


def test_events_say_where_they_leave_a_transfer() -> None:
    """Every file event but progress names a state the table can lead to (or the first)."""
    reachable = {to for _, to in TRANSITIONS.values()} | {S.OFFERED}
    file_events = [c for c in vars(events).values()
                   if isinstance(c, type) and issubclass(c, events.FileEvent)
                   and c is not events.FileEvent]
    assert len(file_events) == 12
    for event in file_events:
        if event is events.FileProgress:
            assert event.transfer_state is None
        else:
            assert event.transfer_state in reachable, event


def _info(state: TransferState, outgoing: bool) -> TransferInfo:
    return TransferInfo(transfer="00" * 16, outgoing=outgoing, peer_id="peer", room_id=None,
                        name="a.bin", size=10, hash="00" * 32, state=state, bytes=0,
                        path="/tmp/a.bin" if outgoing or state is S.COMPLETE else None,
                        reason=None)


@pytest.mark.parametrize("outgoing", [False, True], ids=["incoming", "outgoing"])
def test_the_window_offers_what_the_table_allows(outgoing: bool) -> None:
    """Each action of a card or the panel is a step the table allows from that state."""
    step_of = {FileAction.ACCEPT: Step.ACCEPT, FileAction.SAVE_AS: Step.ACCEPT,
               FileAction.RETRY: Step.ACCEPT, FileAction.DECLINE: Step.DECLINE,
               FileAction.PAUSE: Step.PAUSE, FileAction.RESUME: Step.RESUME,
               FileAction.CANCEL: Step.CANCEL}
    for state in TransferState:
        actions = actions_for(_info(state, outgoing))
        for action in actions:
            if action in step_of:
                assert can(state, step_of[action], outgoing), (state, action)
        user_steps = {Step.ACCEPT, Step.PAUSE, Step.RESUME, Step.DECLINE, Step.CANCEL}
        if any(can(state, step, outgoing) for step in user_steps):
            assert any(a in step_of for a in actions), state  # something to do is shown


def test_the_window_takes_each_events_state_and_shows_speed_only_while_bytes_move(
        qapp: object) -> None:
    """The transfer cache applies what an event says (``FileEvent.transfer_state``); a paused
    download shows no speed, even right after a progress event said it was moving."""
    from app.core.events import FileAccepted, FilePaused, FileProgress, FileResumed
    from ui.files.transfer_cache import TransferCache

    cache = TransferCache()
    cache.put(_info(S.OFFERED, outgoing=False))
    tid = "00" * 16
    cache._accepted(FileAccepted(transfer=tid, dir="/tmp"))
    cache._progress(FileProgress(transfer=tid, bytes=5, size=10, speed=100.0))
    got = cache.get(tid)
    assert got is not None and got.state is S.RECEIVING and cache.speed(tid) == 100.0
    cache._paused(FilePaused(transfer=tid, bytes=5, size=10))
    got = cache.get(tid)
    assert got is not None and got.state is S.PAUSED and cache.speed(tid) == 0.0
    cache._resumed(FileResumed(transfer=tid))
    got = cache.get(tid)
    assert got is not None and got.state is S.RECEIVING


def test_the_window_says_when_a_file_waits_in_the_recipients_mailbox(qapp: object) -> None:
    """``file_deposited``: the sender's card says the file waits, sealed, at the mailbox."""
    from app.core.events import FileDeposited
    from ui.files.transfer_cache import TransferCache
    from ui.files.transfer_text import status_text

    cache = TransferCache()
    cache.put(_info(S.OFFERED, outgoing=True))
    tid = "00" * 16
    assert status_text(cache.get(tid), 0.0, "Bob") == "Waiting for Bob to accept"
    cache._deposited(FileDeposited(transfer=tid, peer_id="peer", mailbox="mia"))
    got = cache.get(tid)
    assert got is not None and got.state is S.OFFERED and got.held_by == "mia"
    assert status_text(got, 0.0, "Bob") == "Waiting in Bob's mailbox, sealed"
