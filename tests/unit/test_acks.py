"""Out-of-order acknowledgements never move a checkpoint over a hole."""

from __future__ import annotations

from agent.records import FileId
from agent.state.acks import AckTracker

A, B = FileId(1), FileId(2)


def test_checkpoint_waits_for_every_earlier_piece_of_the_same_file() -> None:
    acks = AckTracker()
    acks.track(A, 0)
    first, second, third = (acks.issue(A, end) for end in (100, 200, 300))

    acks.complete(third)
    acks.complete(second)
    assert acks.committed(A) == 0, "the first piece is still in flight"

    acks.complete(first)
    assert acks.committed(A) == 300
    assert acks.outstanding() == 0


def test_files_advance_independently_and_a_forgotten_file_is_harmless() -> None:
    acks = AckTracker()
    acks.track(A, 10)
    acks.track(B, 0)
    a1, b1 = acks.issue(A, 50), acks.issue(B, 70)

    acks.complete(b1)
    assert (acks.committed(A), acks.committed(B)) == (10, 70)

    acks.forget(A)
    acks.complete(a1)  # late ack of a truncated file
    assert acks.outstanding() == 0


def test_completing_twice_counts_once() -> None:
    acks = AckTracker()
    acks.track(A, 0)
    ticket = acks.issue(A, 5)
    acks.complete(ticket)
    acks.complete(ticket)
    assert acks.outstanding() == 0 and acks.committed(A) == 5
