"""spill_policy.StoreLedger: object-store accounting and LRU victim choice, without processes."""
from __future__ import annotations

import pytest
from ember._private import spill_policy
from ember._private.spill_policy import StoreLedger

MiB = 1 << 20


def _fill(ledger: StoreLedger, ids: list[bytes], size: int, now: float = 0.0) -> None:
    for oid in ids:
        assert ledger.admit(oid, size, "w", now) is not None
        ledger.sealed(oid, size, "w", now)


def test_admit_within_capacity_then_refuses_what_does_not_fit():
    ledger = StoreLedger(100)
    assert ledger.admit(b"a", 70, "", 0.0) == 0      # the node manager gets no credit
    assert ledger.committed == 70
    assert ledger.admit(b"b", 40, "", 0.0) is None
    assert ledger.shortfall(40) == 10
    assert ledger.admit(b"b", 30, "", 0.0) == 0
    assert ledger.shortfall(1) == 1


def test_too_big_only_past_the_whole_capacity():
    ledger = StoreLedger(100)
    assert not ledger.too_big(100) and ledger.too_big(101)
    assert not StoreLedger(0).too_big(1 << 60)        # 0 = unlimited


def test_unlimited_store_admits_everything_with_endless_credit():
    ledger = StoreLedger(0)
    assert ledger.admit(b"a", 1 << 40, "w", 0.0) >= 1 << 40
    assert ledger.shortfall(1 << 50) == 0 and ledger.over_threshold() == 0


def test_sealing_turns_the_reservation_into_used_bytes():
    ledger = StoreLedger(100)
    ledger.admit(b"a", 30, "", 0.0)
    ledger.sealed(b"a", 30, "", 0.0)
    assert ledger.used == 30 and ledger.committed == 30 and ledger.in_memory(b"a")
    ledger.sealed(b"a", 30, "", 0.0)                  # a repeated seal counts once
    assert ledger.used == 30


def test_credit_is_capped():
    assert StoreLedger(10 << 30).admit(b"a", 1, "w", 0.0) == spill_policy.CREDIT_MAX_BYTES


def test_credit_only_while_mostly_empty_and_paid_by_seals():
    ledger = StoreLedger(400 * MiB)
    credit = ledger.admit(b"a", 1 * MiB, "w", 0.0)
    assert credit == (399 * MiB) // spill_policy.CREDIT_SHARE
    assert ledger.committed == 1 * MiB + credit
    # Written on credit: no reservation, the credit pays.
    ledger.sealed(b"a", 1 * MiB, "w", 0.0)
    ledger.sealed(b"b", 2 * MiB, "w", 0.0)
    assert ledger.committed == 3 * MiB + credit - 2 * MiB
    # Asking again returns the old credit first.
    ledger.admit(b"c", 1 * MiB, "w", 0.1)
    assert ledger.committed <= 4 * MiB + 400 * MiB // spill_policy.CREDIT_SHARE
    # Over half full: no credit, every write asks.
    _fill(ledger, [bytes([i]) for i in range(10, 12)], 100 * MiB, 0.2)
    assert ledger.admit(b"d", 1 * MiB, "x", 0.3) == 0


def test_credit_and_reservations_expire():
    ledger = StoreLedger(800 * MiB)
    credit = ledger.admit(b"a", 1 * MiB, "w", 0.0)
    assert credit > 0
    ledger.admit(b"x", 0, "", spill_policy.CREDIT_TTL_S + 0.01)
    assert ledger.committed == 1 * MiB       # the credit is gone, the reservation stays
    ledger.admit(b"y", 0, "", spill_policy.RESERVATION_TTL_S + 1)
    assert ledger.committed == 0
    # The node manager's own (a restore, a copy from another node) never expire.
    ledger.admit(b"z", 1 * MiB, "", 0.0)
    ledger.admit(b"q", 0, "", 1e9)
    assert ledger.committed == 1 * MiB


def test_writer_gone_releases_its_reservations_and_credit():
    ledger = StoreLedger(800 * MiB)
    ledger.admit(b"a", 5 * MiB, "dead", 0.0)
    ledger.admit(b"b", 7 * MiB, "alive", 0.0)
    ledger.writer_gone("dead")
    assert ledger.committed == 7 * MiB + ledger._credit["alive"][0]


def test_victims_are_least_recently_used_first_and_skip_pinned():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a", b"b", b"c", b"d"], 20)
    ledger.touch(b"a")                                 # a is now the most recent
    victims = ledger.choose_victims(30, pinned={b"b"})
    assert [v[0] for v in victims] == [b"c", b"d"]
    assert all(not on_disk for _, _, on_disk in victims)
    # Chosen ones are being spilled: never chosen twice.
    assert [v[0] for v in ledger.choose_victims(10, pinned={b"b"})] == [b"a"]


def test_no_victims_unless_enough_can_be_freed():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a", b"b"], 40)
    assert ledger.choose_victims(50, pinned={b"a"}) == []
    # Nothing was marked: a later round can still pick them.
    assert [v[0] for v in ledger.choose_victims(50, pinned=set())] == [b"a", b"b"]


def test_victims_go_on_up_to_want():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a", b"b", b"c"], 20)
    assert len(ledger.choose_victims(10, set(), want=35)) == 2


def test_spill_done_frees_memory_and_keeps_a_disk_copy():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a"], 60)
    ledger.choose_victims(60, set())
    assert ledger.spill_done(b"a")
    assert ledger.used == 0 and ledger.spilled_size(b"a") == 60
    st = ledger.stats()
    assert st.num_spilled == 1 and st.spilled_bytes == 60 and st.total_spilled_bytes == 60


def test_restored_object_keeps_its_disk_copy_and_respills_for_free():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a"], 60)
    ledger.choose_victims(60, set())
    ledger.spill_done(b"a")
    assert ledger.admit(b"a", 60, "", 1.0) == 0
    assert ledger.restored(b"a", 1.0)
    assert ledger.in_memory(b"a") and ledger.spilled_size(b"a") is None
    assert ledger.stats().total_restored_bytes == 60
    assert ledger.choose_victims(60, set()) == [(b"a", 60, True)]
    ledger.spill_done(b"a")
    assert ledger.stats().total_spilled_bytes == 60    # not written twice


def test_spill_failed_puts_the_object_back_in_the_running():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a"], 60)
    ledger.choose_victims(60, set())
    ledger.spill_failed(b"a")
    assert ledger.in_memory(b"a") and ledger.used == 60
    assert ledger.choose_victims(60, set()) == [(b"a", 60, False)]


def test_freed_during_spill_or_restore_is_reported():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a", b"b"], 40)
    ledger.choose_victims(40, set())
    assert ledger.freed(b"a") == (True, False)
    assert not ledger.spill_done(b"a")                 # delete the disk copy instead
    assert ledger.used == 40
    # b spilled, then freed while being restored.
    ledger.choose_victims(40, set())
    ledger.spill_done(b"b")
    ledger.admit(b"b", 40, "", 0.0)
    assert ledger.freed(b"b") == (False, True)
    assert not ledger.restored(b"b", 0.0)
    assert ledger.committed == 0 and ledger.stats().num_spilled == 0


def test_over_threshold_counts_what_is_already_being_spilled():
    ledger = StoreLedger(100)
    _fill(ledger, [b"a", b"b", b"c", b"d", b"e"], 18)   # 90 > 80
    assert ledger.over_threshold() == 10
    ledger.choose_victims(10, set())
    assert ledger.over_threshold() == 0


def test_negative_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity"):
        StoreLedger(-1)
