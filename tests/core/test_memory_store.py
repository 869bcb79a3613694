"""MemoryStore: object readiness, blocking waits and completion callbacks."""
from __future__ import annotations

import threading

from ember._private.memory_store import Entry, MemoryStore

A, B, C = b"a" * 4, b"b" * 4, b"c" * 4
JOIN = 10.0  # generous bound on thread joins; never asserted as a duration


def test_add_pending_then_set_ready_records_value() -> None:
    store = MemoryStore()
    store.add_pending(A)
    entry = store.get(A)
    assert entry is not None and entry.ready is False and entry.data is None
    assert store.set_ready(A, data=b"v", is_error=True, size=1, node_id="n1") is True
    entry = store.get(A)
    assert (entry.ready, entry.data, entry.in_shm, entry.is_error, entry.size, entry.node_id) == (
        True, b"v", False, True, 1, "n1")


def test_add_pending_twice_keeps_existing_entry() -> None:
    store = MemoryStore()
    store.put_ready(A, data=b"v")
    store.add_pending(A)
    assert store.get(A).ready is True and store.get(A).data == b"v"


def test_put_ready() -> None:
    store = MemoryStore()
    store.put_ready(A, in_shm=True, size=123)
    entry = store.get(A)
    assert entry.ready and entry.in_shm and entry.size == 123 and entry.data is None
    assert len(store) == 1


def test_set_ready_twice_returns_false_and_keeps_first_value() -> None:
    store = MemoryStore()
    store.add_pending(A)
    assert store.set_ready(A, data=b"first") is True
    assert store.set_ready(A, data=b"second") is False
    assert store.get(A).data == b"first"


def test_set_ready_on_unknown_returns_false() -> None:
    store = MemoryStore()
    assert store.set_ready(A, data=b"v") is False
    assert store.get(A) is None


def test_pending_to_ready_wakes_waiting_thread() -> None:
    store = MemoryStore()
    store.add_pending(A)
    waiting = threading.Event()
    result: list[set[bytes]] = []

    def waiter() -> None:
        result.append(store.wait_ready([A], 1, None, on_first_wait=waiting.set))

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    assert waiting.wait(JOIN)  # the waiter found A pending and is about to block
    assert result == []
    assert store.set_ready(A, data=b"v") is True
    t.join(JOIN)
    assert not t.is_alive()
    assert result == [{A}]


def test_waiter_for_two_wakes_only_after_both() -> None:
    store = MemoryStore()
    store.add_pending(A)
    store.add_pending(B)
    waiting = threading.Event()
    result: list[set[bytes]] = []
    t = threading.Thread(
        target=lambda: result.append(store.wait_ready([A, B], 2, None, on_first_wait=waiting.set)),
        daemon=True)
    t.start()
    assert waiting.wait(JOIN)
    store.set_ready(A, data=b"1")
    t.join(0.05)
    assert t.is_alive() and result == []  # still needs B
    store.set_ready(B, data=b"2")
    t.join(JOIN)
    assert result == [{A, B}]


def test_wait_ready_num_ready_and_timeout() -> None:
    store = MemoryStore()
    store.put_ready(A, data=b"v")
    store.add_pending(B)
    store.add_pending(C)
    assert store.wait_ready([A, B, C], 1, timeout=0) == {A}
    # Two wanted, only one ready: times out with what is ready.
    assert store.wait_ready([A, B, C], 2, timeout=0.02) == {A}
    store.set_ready(C, data=b"c")
    assert store.wait_ready([A, B, C], 2, timeout=0) == {A, C}
    # More ready than asked for: all ready ones are reported.
    assert store.wait_ready([A, B, C], 1, timeout=0) == {A, C}


def test_wait_ready_treats_unknown_ids_as_ready() -> None:
    store = MemoryStore()
    store.add_pending(A)
    assert store.wait_ready([A, B], 1, timeout=0) == {B}
    store.delete(A)  # a freed object no longer blocks anyone
    assert store.wait_ready([A, B], 2, timeout=None) == {A, B}


def test_on_ready_fires_once_when_ready() -> None:
    store = MemoryStore()
    store.add_pending(A)
    seen: list[Entry] = []
    assert store.on_ready(A, seen.append) is True
    assert seen == []
    store.set_ready(A, data=b"v")
    assert len(seen) == 1 and seen[0].ready and seen[0].data == b"v"
    assert store.set_ready(A, data=b"again") is False
    assert len(seen) == 1
    assert not store.get(A).callbacks          # fired once, then dropped


def test_on_ready_several_callbacks_all_fire() -> None:
    store = MemoryStore()
    store.add_pending(A)
    calls: list[str] = []
    store.on_ready(A, lambda e: calls.append("first"))
    store.on_ready(A, lambda e: calls.append("second"))
    store.set_ready(A, data=b"v")
    assert calls == ["first", "second"]


def test_on_ready_fires_immediately_if_already_ready() -> None:
    store = MemoryStore()
    store.put_ready(A, data=b"v")
    seen: list[Entry] = []
    assert store.on_ready(A, seen.append) is True
    assert len(seen) == 1 and seen[0].data == b"v"


def test_on_ready_unknown_returns_false_and_never_calls() -> None:
    store = MemoryStore()
    seen: list[Entry] = []
    assert store.on_ready(A, seen.append) is False
    store.put_ready(A, data=b"v")
    assert seen == []


def test_callback_may_use_the_store() -> None:
    # Callbacks run outside the lock, so they can touch the store without deadlock.
    store = MemoryStore()
    store.add_pending(A)
    store.add_pending(B)
    store.on_ready(A, lambda e: store.set_ready(B, data=e.data))
    store.set_ready(A, data=b"v")
    assert store.get(B).ready and store.get(B).data == b"v"


def test_delete() -> None:
    store = MemoryStore()
    store.put_ready(A, data=b"v")
    store.add_pending(B)
    assert len(store) == 2
    entry = store.delete(A)
    assert entry is not None and entry.data == b"v"
    assert store.get(A) is None
    assert store.delete(A) is None
    assert len(store) == 1
    store.delete(B)
    assert store.set_ready(B, data=b"late") is False  # freed before its value came
    assert len(store) == 0


def test_on_first_wait_not_called_when_already_satisfied() -> None:
    store = MemoryStore()
    store.put_ready(A, data=b"v")
    calls: list[int] = []
    assert store.wait_ready([A], 1, None, on_first_wait=lambda: calls.append(1)) == {A}
    assert calls == []


def test_on_first_wait_not_called_on_zero_timeout() -> None:
    store = MemoryStore()
    store.add_pending(A)
    calls: list[int] = []
    assert store.wait_ready([A], 1, 0, on_first_wait=lambda: calls.append(1)) == set()
    assert calls == []


def test_on_first_wait_called_once_and_without_the_lock() -> None:
    store = MemoryStore()
    store.add_pending(A)
    calls: list[int] = []

    def on_first_wait() -> None:
        calls.append(1)
        # Runs with the store's lock released: it can make A ready itself.
        store.set_ready(A, data=b"v")

    assert store.wait_ready([A], 1, None, on_first_wait=on_first_wait) == {A}
    assert calls == [1]


def test_on_first_wait_called_once_across_several_wakeups() -> None:
    store = MemoryStore()
    for oid in (A, B, C):
        store.add_pending(oid)
    waiting = threading.Event()
    calls: list[int] = []

    def on_first_wait() -> None:
        calls.append(1)
        waiting.set()

    result: list[set[bytes]] = []
    t = threading.Thread(
        target=lambda: result.append(store.wait_ready([A, B, C], 3, None, on_first_wait)),
        daemon=True)
    t.start()
    assert waiting.wait(JOIN)
    for oid in (A, B, C):
        store.set_ready(oid, data=oid)
    t.join(JOIN)
    assert result == [{A, B, C}]
    assert calls == [1]


def test_delete_wakes_a_waiter_at_once() -> None:
    """A freed object counts as done for wait_ready, without its 1 s re-check."""
    store = MemoryStore()
    store.add_pending(A)
    woke = threading.Event()

    def waiter() -> None:
        store.wait_ready([A], 1, None)
        woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not woke.wait(0.2)
    store.delete(A)
    assert woke.wait(0.5)
    t.join(JOIN)


def test_waiter_wakes_once_enough_are_set_not_at_each() -> None:
    store = MemoryStore()
    ids = [bytes([i]) * 4 for i in range(50)]
    for oid in ids:
        store.add_pending(oid)
    out: list[set] = []
    t = threading.Thread(target=lambda: out.append(store.wait_ready(ids, 50, None)))
    t.start()
    for oid in ids[:49]:
        store.set_ready(oid, data=b"v")
    t.join(0.3)
    assert t.is_alive() and not out          # 49 of 50: still waiting
    store.set_ready(ids[49], data=b"v")
    t.join(JOIN)
    assert out == [set(ids)]
    assert not store._waiters                # nothing left registered


def test_reset_while_waiting_is_seen_after_the_wake() -> None:
    """An object made pending again (being rebuilt) does not count as ready."""
    store = MemoryStore()
    store.add_pending(A)
    store.add_pending(B)
    store.set_ready(A, data=b"v")
    out: list[set] = []
    t = threading.Thread(target=lambda: out.append(store.wait_ready([A, B], 2, 2.0)))
    t.start()
    store.reset(A)
    store.set_ready(B, data=b"v")
    t.join(JOIN)
    assert out == [{B}]                      # timed out: A was reset meanwhile
