"""The node's table of what its receiving bridges took (enrgdaq.message.seen), on a real file:
shared by two bridges of a node, and settled after a kill between a hand-off's start and end."""

from __future__ import annotations

import os
from typing import Any

from enrgdaq.message.seen import SeenLog
from enrgdaq.message.sequence import chained

SENDER = b"\x01" * 8


def stream(topic: str = "store.DAQJobStoreCSV") -> bytes:
    frame = chained(topic, SENDER, 1, 0)
    return frame[: frame.index(b"\0") + 9]


def test_two_bridges_of_a_node_share_what_was_taken(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "seen")
    first, second = SeenLog(path, ring=1), SeenLog(path, ring=2)
    with first.locked():
        first.begin(stream(), 5, ring_seq=0)
        first.settle(stream(), 5)
    with second.locked():
        assert second.last(stream()) == 5  # a payload up to 5 from the other link is a duplicate
        second.take(stream(), 6)
    with first.locked():
        assert first.last(stream()) == 6
    assert first.changed() == {(SENDER, "store.DAQJobStoreCSV"): 5}
    assert second.changed() == {(SENDER, "store.DAQJobStoreCSV"): 6}
    first.close()
    second.close()


def test_a_hand_off_a_killed_run_left_is_kept_if_its_ring_holds_it_else_undone(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "seen")
    killed = SeenLog(path, ring=7)
    with killed.locked():
        killed.begin(stream("store.a"), 3, ring_seq=0)
        killed.settle(stream("store.a"), 3)
        killed.begin(stream("store.a"), 4, ring_seq=1)  # committed as ring seq 1, then killed
        killed.begin(stream("store.b"), 9, ring_seq=2)  # killed before the commit of ring seq 2
    killed.close()  # (its lock went with it)

    rings = {7: 2}  # ring 7's write sequence: seqs 0 and 1 committed

    def committed(ring: int, seq: int) -> bool:
        return rings.get(ring, 0) > seq

    after = SeenLog(path, ring=8, committed=committed)
    with after.locked():
        assert after.last(stream("store.a")) == 4
        assert after.last(stream("store.b")) == 0  # back to before the hand-off: 9 is taken when sent again
    assert after.undone == 1
    after.close()


def test_without_a_file_the_table_is_the_process_own(tmp_path: Any) -> None:
    log = SeenLog(None)
    with log.locked():
        assert log.last(stream()) is None
        log.take(stream(), 1)
        assert log.last(stream()) == 1
    log.close()
