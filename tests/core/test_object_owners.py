"""The pure owner bookkeeping behind freeing a dead owner's shared-memory objects."""
from __future__ import annotations

from ember._private.object_owners import ObjectOwners


def test_a_dead_owner_takes_only_its_own_objects():
    owners = ObjectOwners()
    assert not owners.add(b"a", "w1", "n1")
    assert not owners.add(b"b", "w1", "n1")
    assert not owners.add(b"c", "w2", "n1")
    assert owners.owner_died("w1") == [b"a", b"b"]
    assert len(owners) == 1 and owners.owner_died("w1") == []


def test_a_dead_node_takes_every_object_its_processes_owned():
    owners = ObjectOwners()
    owners.add(b"a", "w1", "n1")
    owners.add(b"b", "w2", "n2")
    owners.add(b"c", "w3", "n1")
    assert owners.node_died("n1") == [b"a", b"c"]
    assert owners.owner_died("w2") == [b"b"]


def test_freed_objects_are_forgotten():
    owners = ObjectOwners()
    owners.add(b"a", "w1", "n1")
    owners.remove(b"a")
    owners.remove(b"never")
    assert owners.owner_died("w1") == [] and len(owners) == 0


def test_an_object_sealed_after_its_owner_died_is_freed_on_arrival():
    owners = ObjectOwners()
    owners.owner_died("w1")
    owners.node_died("n9")
    assert owners.add(b"late", "w1", "n1") is True
    assert owners.add(b"late2", "w5", "n9") is True
    assert owners.add(b"ok", "w2", "n1") is False


def test_unknown_owner_is_not_tracked_and_dead_memory_is_bounded():
    owners = ObjectOwners(dead_memory=2)
    assert owners.add(b"x", "", "") is False and len(owners) == 0
    for w in ("w1", "w2", "w3"):
        owners.owner_died(w)
    assert owners.add(b"a", "w1", "n") is False   # forgotten: the oldest of three
    assert owners.add(b"b", "w3", "n") is True


def test_re_adding_an_object_moves_it_to_its_new_owner():
    owners = ObjectOwners()
    owners.add(b"a", "w1", "n1")
    owners.add(b"a", "w2", "n1")
    assert owners.owner_died("w1") == [] and owners.owner_died("w2") == [b"a"]
