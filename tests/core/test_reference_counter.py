"""ReferenceCounter: the pure distributed reference-counting state machine."""
from __future__ import annotations

from ember._private.reference_counter import FreeObject, ReferenceCounter, SendRemoveBorrow

X, Y, Z, OUTER = b"x" * 4, b"y" * 4, b"z" * 4, b"o" * 4
OWNER = "10.0.0.1:5000"


def owned(rc: ReferenceCounter, object_id: bytes, inner: tuple[bytes, ...] = (), local: int = 1) -> None:
    rc.add_owned(object_id, inner)
    for _ in range(local):
        rc.add_local(object_id)


# ------------------------------------------------------------------ owned objects


def test_owned_object_freed_when_last_local_ref_goes() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=2)
    assert rc.is_owned(X)
    assert rc.remove_local(X) == []
    assert rc.has(X)
    assert rc.remove_local(X) == [FreeObject(X, ())]
    assert not rc.has(X)
    assert len(rc) == 0


def test_owned_object_kept_while_submitted_as_task_arg() -> None:
    rc = ReferenceCounter()
    owned(rc, X)
    rc.add_submitted([X])
    assert rc.remove_local(X) == []
    assert rc.counts(X)["submitted"] == 1
    assert rc.remove_submitted([X]) == [FreeObject(X, ())]
    assert not rc.has(X)


def test_submitted_twice_needs_two_completions() -> None:
    rc = ReferenceCounter()
    owned(rc, X)
    rc.add_submitted([X, X])
    assert rc.remove_local(X) == []
    assert rc.remove_submitted([X]) == []
    assert rc.remove_submitted([X]) == [FreeObject(X, ())]


def test_remove_submitted_for_several_ids_collects_actions() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=0)
    owned(rc, Y, local=1)
    rc.add_submitted([X, Y])
    assert rc.remove_submitted([X, Y, b"unknown"]) == [FreeObject(X, ())]
    assert rc.has(Y) and not rc.has(X)


def test_owned_object_kept_while_borrowed_then_freed_on_remove_borrower() -> None:
    rc = ReferenceCounter()
    owned(rc, X)
    assert rc.add_borrower(X, "w1:1") is True
    assert rc.add_borrower(X, "w2:1") is True
    assert rc.remove_local(X) == []
    assert rc.counts(X)["borrowers"] == {"w1:1", "w2:1"}
    assert rc.remove_borrower(X, "w1:1") == []
    assert rc.remove_borrower(X, "w2:1") == [FreeObject(X, ())]
    assert not rc.has(X)


def test_borrower_died_frees_only_objects_it_alone_kept() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=0)
    owned(rc, Y, local=0)
    owned(rc, Z, local=1)
    rc.add_borrower(X, "dead:1")
    rc.add_borrower(Y, "dead:1")
    rc.add_borrower(Y, "alive:1")
    rc.add_borrower(Z, "dead:1")
    assert rc.borrower_died("dead:1") == [FreeObject(X, ())]
    assert not rc.has(X)
    assert rc.counts(Y)["borrowers"] == {"alive:1"}
    assert rc.counts(Z)["borrowers"] == set()
    assert rc.borrower_died("dead:1") == []  # nothing left to drop
    assert rc.remove_borrower(Y, "alive:1") == [FreeObject(Y, ())]


def test_add_borrower_on_unknown_freed_or_borrowed_object_returns_false() -> None:
    rc = ReferenceCounter()
    assert rc.add_borrower(X, "w:1") is False
    assert not rc.has(X)  # no entry created for the late borrower
    owned(rc, Y)
    rc.remove_local(Y)
    assert rc.add_borrower(Y, "w:1") is False
    rc.add_borrowed(Z, OWNER)
    assert rc.add_borrower(Z, "w:1") is False  # only the owner tracks borrowers
    assert rc.counts(Z)["borrowers"] == set()


def test_remove_borrower_on_unknown_is_noop() -> None:
    rc = ReferenceCounter()
    assert rc.remove_borrower(X, "w:1") == []
    assert len(rc) == 0


# ------------------------------------------------------------------ borrowed refs


def test_add_borrowed_true_only_first_time() -> None:
    rc = ReferenceCounter()
    assert rc.add_borrowed(X, OWNER) is True
    assert rc.add_borrowed(X, OWNER) is False
    assert rc.is_owned(X) is False
    owned(rc, Y)
    assert rc.add_borrowed(Y, OWNER) is False  # already known (owned here)
    assert rc.is_owned(Y) is True


def test_borrowed_ref_sends_remove_borrow_only_when_all_counts_zero() -> None:
    rc = ReferenceCounter()
    assert rc.add_borrowed(X, OWNER)
    rc.add_local(X)
    rc.add_local(X)
    rc.add_submitted([X])
    assert rc.remove_local(X) == []
    assert rc.remove_local(X) == []  # still an argument of a pending task
    assert rc.has(X)
    assert rc.remove_submitted([X]) == [SendRemoveBorrow(X, OWNER)]
    assert not rc.has(X)
    assert rc.remove_local(X) == []  # nothing more once released


def test_borrowed_ref_never_emits_free_object() -> None:
    rc = ReferenceCounter()
    rc.add_borrowed(X, OWNER)
    rc.add_local(X)
    actions = rc.remove_local(X)
    assert actions == [SendRemoveBorrow(X, OWNER)]
    assert not any(isinstance(a, FreeObject) for a in actions)


def test_borrowed_ref_without_owner_address_is_dropped_silently() -> None:
    rc = ReferenceCounter()
    rc.add_borrowed(X, "")
    rc.add_local(X)
    assert rc.remove_local(X) == []
    assert not rc.has(X)


def test_borrowed_ref_kept_while_contained_in_owned_object() -> None:
    rc = ReferenceCounter()
    rc.add_borrowed(X, OWNER)
    rc.add_local(X)
    owned(rc, OUTER, inner=(X,))
    assert rc.remove_local(X) == []
    assert rc.counts(X)["contained"] == 1
    assert rc.remove_local(OUTER) == [FreeObject(OUTER, (X,)), SendRemoveBorrow(X, OWNER)]
    assert len(rc) == 0


# ------------------------------------------------------------------ contained refs


def test_contained_ref_outlives_its_local_refs() -> None:
    rc = ReferenceCounter()
    owned(rc, X)
    owned(rc, OUTER, inner=(X,))
    assert rc.counts(X)["contained"] == 1
    assert rc.remove_local(X) == []
    assert rc.has(X)
    assert rc.remove_local(OUTER) == [FreeObject(OUTER, (X,)), FreeObject(X, ())]
    assert len(rc) == 0


def test_contained_ref_with_live_local_ref_survives_outer() -> None:
    rc = ReferenceCounter()
    owned(rc, X)
    owned(rc, OUTER, inner=(X,))
    assert rc.remove_local(OUTER) == [FreeObject(OUTER, (X,))]
    assert rc.counts(X)["contained"] == 0
    assert rc.remove_local(X) == [FreeObject(X, ())]


def test_cascade_is_multi_level() -> None:
    rc = ReferenceCounter()
    owned(rc, Z)
    owned(rc, Y, inner=(Z,))
    owned(rc, X, inner=(Y,))
    assert rc.remove_local(Z) == []
    assert rc.remove_local(Y) == []
    assert rc.remove_local(X) == [FreeObject(X, (Y,)), FreeObject(Y, (Z,)), FreeObject(Z, ())]
    assert len(rc) == 0


def test_ref_contained_in_two_objects_freed_after_both() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=0)
    owned(rc, Y, inner=(X,))
    owned(rc, Z, inner=(X,))
    assert rc.counts(X)["contained"] == 2
    assert rc.remove_local(Y) == [FreeObject(Y, (X,))]
    assert rc.has(X)
    assert rc.remove_local(Z) == [FreeObject(Z, (X,)), FreeObject(X, ())]


def test_outer_kept_by_borrower_keeps_inner_alive() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=0)
    owned(rc, OUTER, inner=(X,))
    rc.add_borrower(OUTER, "w:1")
    assert rc.remove_local(OUTER) == []
    assert rc.has(X)
    assert rc.remove_borrower(OUTER, "w:1") == [FreeObject(OUTER, (X,)), FreeObject(X, ())]


def test_set_inner_for_task_return() -> None:
    rc = ReferenceCounter()
    owned(rc, OUTER)  # a task return, value not yet known
    assert rc.set_inner(OUTER, (X,), {X: OWNER}) == []
    assert rc.counts(X) == {"local": 0, "submitted": 0, "contained": 1,
                            "borrowers": set(), "owned": False}
    assert rc.remove_local(OUTER) == [FreeObject(OUTER, (X,)), SendRemoveBorrow(X, OWNER)]
    assert len(rc) == 0


def test_set_inner_on_known_inner_ref_bumps_contained() -> None:
    rc = ReferenceCounter()
    owned(rc, X)  # the inner ref is one we own and still hold
    owned(rc, OUTER)
    rc.set_inner(OUTER, (X,), {})
    assert rc.counts(X)["contained"] == 1 and rc.counts(X)["owned"] is True
    assert rc.remove_local(X) == []
    assert rc.remove_local(OUTER) == [FreeObject(OUTER, (X,)), FreeObject(X, ())]


def test_set_inner_on_unknown_object_is_noop() -> None:
    rc = ReferenceCounter()
    assert rc.set_inner(OUTER, (X,), {X: OWNER}) == []
    assert not rc.has(OUTER)
    assert not rc.has(X)


# ------------------------------------------------------------------ queries and edge cases


def test_remove_local_on_unknown_id_is_noop() -> None:
    rc = ReferenceCounter()
    assert rc.remove_local(X) == []
    assert len(rc) == 0
    assert rc.counts(X) is None


def test_counts_reporting() -> None:
    rc = ReferenceCounter()
    owned(rc, X, local=2)
    rc.add_submitted([X])
    rc.add_borrower(X, "w:1")
    owned(rc, OUTER, inner=(X,))
    counts = rc.counts(X)
    assert counts == {"local": 2, "submitted": 1, "contained": 1,
                      "borrowers": {"w:1"}, "owned": True}
    counts["borrowers"].add("mutated")  # a copy: the counter is unaffected
    assert rc.counts(X)["borrowers"] == {"w:1"}
    assert len(rc) == 2


def test_local_count_before_registration_is_a_placeholder_owned_entry() -> None:
    rc = ReferenceCounter()
    rc.add_local(X)
    assert rc.counts(X) == {"local": 1, "submitted": 0, "contained": 0,
                            "borrowers": set(), "owned": True}
    rc.add_owned(X)
    assert rc.remove_local(X) == [FreeObject(X, ())]
