"""The pure locality choices behind split/streaming_split(locality_hints=...)."""
from __future__ import annotations

import pytest

from ember.data._internal.locality import choose_bundle, plan_local_split

A, B, NONE = frozenset({"a"}), frozenset({"b"}), frozenset()


def test_blocks_stay_with_the_part_on_their_node():
    kept, rest, room = plan_local_split([5, 5, 5, 5], [A, B, B, A], ["a", "b"], [10, 10])
    assert kept == [[0, 3], [1, 2]] and rest == [] and room == [0, 0]


def test_a_part_is_never_overfilled_and_the_rest_is_sliced():
    kept, rest, room = plan_local_split([6, 6, 6], [A, A, A], ["a", "b"], [9, 9])
    assert kept == [[0], []] and rest == [1, 2] and room == [3, 9]
    assert sum(room) == sum(6 for _ in rest)


def test_inline_blocks_and_unknown_nodes_go_to_the_rest():
    kept, rest, room = plan_local_split([3, 3], [NONE, frozenset({"z"})], ["a", "b"], [3, 3])
    assert kept == [[], []] and rest == [0, 1] and room == [3, 3]


def test_parts_sharing_a_node_fill_evenly():
    kept, _, room = plan_local_split([2] * 4, [A] * 4, ["a", "a"], [4, 4])
    assert [len(k) for k in kept] == [2, 2] and room == [0, 0]


def test_equal_split_drops_the_remainder_from_the_rest():
    kept, rest, room = plan_local_split([5, 6], [A, B], ["a", "b"], [5, 5])
    assert kept == [[0], []] and rest == [1] and room == [0, 5]


def test_hint_count_must_match():
    with pytest.raises(ValueError, match="2 locality hints for 3 parts"):
        plan_local_split([1], [A], ["a", "b"], [1, 1, 1])


def test_streaming_choice_prefers_local_then_unclaimed():
    assert choose_bundle([B, A], "a", ["b"]) == 1
    assert choose_bundle([B, NONE], "a", ["b"]) == 1       # inline: anywhere
    assert choose_bundle([B, frozenset({"c"})], "a", ["b"]) == 1
    assert choose_bundle([B], "a", ["b"]) is None          # b's block: look further first
    assert choose_bundle([B], None, ["b"]) == 0            # no hint: first come
    assert choose_bundle([], "a", ["b"]) is None
    assert choose_bundle([A, A], "a", ["a"]) == 0          # same node as the other consumer
