"""ResourceSet arithmetic, NodeResources accounting and node total detection."""
from __future__ import annotations

import math
import pickle

import pytest

from ember._private import accelerators, resources
from ember._private.resources import (
    Allocation,
    NodeResources,
    ResourceSet,
    build_node_resources,
)

# ------------------------------------------------------------------ ResourceSet


def test_resource_set_reads_back_floats() -> None:
    rs = ResourceSet({"CPU": 2, "GPU": 0.5, "custom": 1.25})
    assert rs["CPU"] == 2.0 and rs["GPU"] == 0.5 and rs["custom"] == 1.25
    assert rs.to_dict() == {"CPU": 2.0, "GPU": 0.5, "custom": 1.25}


def test_resource_set_drops_zero_entries() -> None:
    rs = ResourceSet({"CPU": 1, "GPU": 0, "x": 0.0})
    assert dict(rs) == {"CPU": 1.0}
    assert "GPU" not in rs
    assert ResourceSet({"GPU": 0}) == ResourceSet()


def test_resource_set_no_float_drift() -> None:
    # Ten 0.1 subtractions from 1.0 in floats leave ~1e-16, not 0.
    rs = ResourceSet({"CPU": 1})
    for _ in range(10):
        rs = rs - ResourceSet({"CPU": 0.1})
    assert rs.is_empty()
    total = ResourceSet()
    for _ in range(3):
        total = total + {"CPU": 0.1}
    assert total == ResourceSet({"CPU": 0.3})


def test_resource_set_rounds_to_four_decimals() -> None:
    assert ResourceSet({"CPU": 0.00004}).is_empty()
    assert ResourceSet({"CPU": 0.33333})["CPU"] == 0.3333


def test_resource_set_large_byte_counts_stay_exact() -> None:
    big = 3 * 10**12 + 7  # beyond 2**53 once scaled by 10000
    rs = ResourceSet({"memory": big})
    assert rs.units("memory") == big * resources.UNIT_SCALE
    assert rs["memory"] == float(big)


def test_resource_set_add_and_sub() -> None:
    a = ResourceSet({"CPU": 1, "GPU": 0.5})
    b = ResourceSet({"CPU": 2, "custom": 1})
    assert a + b == ResourceSet({"CPU": 3, "GPU": 0.5, "custom": 1})
    assert (a + b) - b == a
    assert a - a == ResourceSet()


def test_resource_set_sub_can_go_negative() -> None:
    # Oversubscribed nodes report negative available CPU.
    rs = ResourceSet({"CPU": 1}) - ResourceSet({"CPU": 2})
    assert rs["CPU"] == -1.0
    assert not rs.is_empty()


def test_fits_in() -> None:
    small = ResourceSet({"CPU": 1, "GPU": 0.5})
    assert small.fits_in(ResourceSet({"CPU": 1, "GPU": 1}))
    assert not small.fits_in(ResourceSet({"CPU": 0.5, "GPU": 1}))
    assert not small.fits_in(ResourceSet({"CPU": 4}))  # missing GPU counts as 0
    assert ResourceSet().fits_in(ResourceSet())
    assert small.fits_in({"CPU": 1, "GPU": 0.5})  # plain dicts accepted


def test_is_empty() -> None:
    assert ResourceSet().is_empty()
    assert ResourceSet(None).is_empty()
    assert not ResourceSet({"CPU": 0.0001}).is_empty()


def test_resource_set_is_hashable_and_equal_by_value() -> None:
    a = ResourceSet({"CPU": 1, "GPU": 0.5})
    b = ResourceSet({"GPU": 0.5, "CPU": 1.0})
    assert a == b and hash(a) == hash(b)
    assert {a: "x"}[b] == "x"
    assert a != ResourceSet({"CPU": 1})
    assert a == {"CPU": 1, "GPU": 0.5}


def test_resource_set_is_immutable() -> None:
    rs = ResourceSet({"CPU": 1})
    with pytest.raises(TypeError):
        rs["CPU"] = 2  # type: ignore[index]
    source = {"CPU": 1}
    rs = ResourceSet(source)
    source["CPU"] = 5
    assert rs["CPU"] == 1.0


def test_resource_set_repr() -> None:
    assert repr(ResourceSet({"GPU": 0.5, "CPU": 1})) == "{CPU: 1, GPU: 0.5}"
    assert repr(ResourceSet({"zeta": 2, "CPU": 1.25, "alpha": 0.0001})) == \
        "{CPU: 1.25, alpha: 0.0001, zeta: 2}"
    assert repr(ResourceSet()) == "{}"
    assert repr(ResourceSet({"CPU": 1}) - {"CPU": 1.5}) == "{CPU: -0.5}"


def test_resource_set_pickles_including_negative() -> None:
    rs = ResourceSet({"CPU": 1}) - {"CPU": 3}
    assert pickle.loads(pickle.dumps(rs)) == rs


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True, None])
def test_resource_set_rejects_bad_quantity(bad) -> None:
    with pytest.raises(ValueError, match="'CPU'"):
        ResourceSet({"CPU": bad})


@pytest.mark.parametrize("bad", ["", 3, None])
def test_resource_set_rejects_bad_name(bad) -> None:
    with pytest.raises(ValueError, match="resource name"):
        ResourceSet({bad: 1})


def test_resource_set_rejects_non_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        ResourceSet([("CPU", 1)])  # type: ignore[arg-type]


# ------------------------------------------------------------------ NodeResources


def node(cpus: float = 8, gpus: int = 0, **extra: float) -> NodeResources:
    total = {"CPU": cpus, "GPU": gpus, **extra}
    return NodeResources(total, [str(i) for i in range(gpus)])


def test_node_total_and_available_start_equal() -> None:
    n = node(cpus=4, gpus=2, memory=1000)
    assert n.total == ResourceSet({"CPU": 4, "GPU": 2, "memory": 1000})
    assert n.available == n.total


def test_node_rejects_gpu_id_count_mismatch() -> None:
    with pytest.raises(ValueError, match="GPU ids"):
        NodeResources({"CPU": 1, "GPU": 2}, ["0"])
    with pytest.raises(ValueError, match="GPU ids"):
        NodeResources({"CPU": 1}, ["0"])


def test_node_rejects_duplicate_gpu_ids() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        NodeResources({"GPU": 2}, ["0", "0"])


def test_allocate_subtracts_and_release_restores_exactly() -> None:
    n = node(cpus=4, gpus=2, memory=1000, custom=3)
    before_avail, before_gpus = n.available, n.gpu_free
    allocs = [n.try_allocate(ResourceSet({"CPU": 0.1, "custom": 0.3, "memory": 7}))
              for _ in range(10)]
    assert all(isinstance(a, Allocation) for a in allocs)
    assert n.available == ResourceSet({"CPU": 3, "GPU": 2, "memory": 930})
    for a in allocs:
        n.release(a)  # type: ignore[arg-type]
    assert n.available == before_avail
    assert n.gpu_free == before_gpus


def test_allocate_returns_none_when_not_fitting_now() -> None:
    n = node(cpus=2)
    assert n.try_allocate(ResourceSet({"CPU": 2})) is not None
    assert n.try_allocate(ResourceSet({"CPU": 1})) is None
    assert n.available == ResourceSet()  # a failed try changes nothing


def test_allocate_unknown_custom_resource_fails() -> None:
    assert node().try_allocate(ResourceSet({"CPU": 1, "TPU": 1})) is None


def test_allocation_records_resources_and_no_gpu_ids_for_cpu_task() -> None:
    a = node(gpus=1).try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    assert a.resources == ResourceSet({"CPU": 1}) and a.gpu_ids == ()


def test_two_half_gpu_tasks_share_one_gpu() -> None:
    n = node(gpus=2)
    a = n.try_allocate(ResourceSet({"GPU": 0.5}))
    b = n.try_allocate(ResourceSet({"GPU": 0.5}))
    assert a is not None and b is not None
    assert a.gpu_ids == b.gpu_ids == ("0",)
    assert n.gpu_free == {"0": 0.0, "1": 1.0}


def test_point_seven_gpu_tasks_go_on_two_gpus() -> None:
    n = node(gpus=2)
    a = n.try_allocate(ResourceSet({"GPU": 0.7}))
    b = n.try_allocate(ResourceSet({"GPU": 0.7}))
    assert a is not None and b is not None
    assert {a.gpu_ids, b.gpu_ids} == {("0",), ("1",)}
    # 0.6 GPU remain in total but no single device has 0.7 left.
    assert n.available["GPU"] == pytest.approx(0.6)
    assert n.try_allocate(ResourceSet({"GPU": 0.7})) is None
    assert n.try_allocate(ResourceSet({"GPU": 0.3})) is not None


def test_fractional_gpu_best_fit_keeps_whole_gpus_free() -> None:
    n = node(gpus=3)
    first = n.try_allocate(ResourceSet({"GPU": 0.5}))
    second = n.try_allocate(ResourceSet({"GPU": 0.25}))
    assert first is not None and second is not None
    assert second.gpu_ids == first.gpu_ids  # fullest device that fits, not an empty one
    whole = n.try_allocate(ResourceSet({"GPU": 2}))
    assert whole is not None and set(whole.gpu_ids) == {"1", "2"}


def test_best_fit_picks_least_free_device() -> None:
    n = node(gpus=2)
    first = n.try_allocate(ResourceSet({"GPU": 0.6}))   # gpu 0: 0.4 left
    second = n.try_allocate(ResourceSet({"GPU": 0.6}))  # only gpu 1 fits: 0.4 left
    assert first is not None and second is not None and second.gpu_ids == ("1",)
    n.release(first)                                     # gpu 0: 1.0, gpu 1: 0.4
    # First-fit would take gpu 0 and break up the only whole GPU.
    c = n.try_allocate(ResourceSet({"GPU": 0.3}))
    assert c is not None and c.gpu_ids == ("1",)
    assert n.try_allocate(ResourceSet({"GPU": 1})) is not None


def test_whole_gpu_request_takes_entirely_free_gpus() -> None:
    n = node(gpus=2)
    n.try_allocate(ResourceSet({"GPU": 0.1}))
    assert n.try_allocate(ResourceSet({"GPU": 2})) is None  # gpu 0 is partly used
    one = n.try_allocate(ResourceSet({"GPU": 1}))
    assert one is not None and one.gpu_ids == ("1",)


def test_multi_gpu_request_gets_distinct_ids() -> None:
    n = node(gpus=4)
    a = n.try_allocate(ResourceSet({"GPU": 3}))
    assert a is not None and a.gpu_ids == ("0", "1", "2")
    assert n.gpu_free == {"0": 0.0, "1": 0.0, "2": 0.0, "3": 1.0}


def test_fractional_gpu_above_one_is_invalid() -> None:
    n = node(gpus=2)
    with pytest.raises(ValueError, match="whole number"):
        n.try_allocate(ResourceSet({"GPU": 1.5}))
    with pytest.raises(ValueError, match="whole number"):
        n.can_ever_fit(ResourceSet({"GPU": 1.5}))
    assert n.available == n.total


def test_gpu_release_restores_per_device_share() -> None:
    n = node(gpus=2)
    allocs = [n.try_allocate(ResourceSet({"GPU": g})) for g in (0.3, 0.3, 1, 0.4)]
    assert all(a is not None for a in allocs)
    assert n.gpu_free == {"0": pytest.approx(0.0), "1": 0.0}
    for a in allocs:
        n.release(a)  # type: ignore[arg-type]
    assert n.gpu_free == {"0": 1.0, "1": 1.0}
    assert n.available == n.total


def test_release_twice_raises() -> None:
    n = node()
    a = n.try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    n.release(a)
    with pytest.raises(ValueError, match="not held"):
        n.release(a)
    assert n.available == n.total


def test_release_on_other_node_raises() -> None:
    a = node().try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    with pytest.raises(ValueError, match="not held"):
        node().release(a)


def test_empty_request_always_allocates() -> None:
    n = node(cpus=0)
    a = n.try_allocate(ResourceSet())
    assert a is not None and a.gpu_ids == ()


def test_can_ever_fit_uses_totals() -> None:
    n = node(cpus=2, gpus=1)
    n.try_allocate(ResourceSet({"CPU": 2, "GPU": 1}))
    assert n.can_ever_fit(ResourceSet({"CPU": 2, "GPU": 1}))  # busy but feasible
    assert not n.can_ever_fit(ResourceSet({"CPU": 3}))
    assert not n.can_ever_fit(ResourceSet({"GPU": 2}))
    assert not n.can_ever_fit(ResourceSet({"TPU": 1}))
    assert node(gpus=0).can_ever_fit(ResourceSet({"GPU": 0.5})) is False


def test_lend_cpu_returns_cpu_to_pool() -> None:
    n = node(cpus=1)
    parent = n.try_allocate(ResourceSet({"CPU": 1}))
    assert parent is not None and n.try_allocate(ResourceSet({"CPU": 1})) is None
    assert n.lend_cpu(parent) is True
    assert n.available["CPU"] == 1.0
    child = n.try_allocate(ResourceSet({"CPU": 1}))
    assert child is not None


def test_lend_cpu_keeps_gpu() -> None:
    n = node(cpus=2, gpus=1)
    a = n.try_allocate(ResourceSet({"CPU": 1, "GPU": 1}))
    assert a is not None
    n.lend_cpu(a)
    assert n.available == ResourceSet({"CPU": 2})


def test_reclaim_cpu_oversubscribes() -> None:
    n = node(cpus=1)
    parent = n.try_allocate(ResourceSet({"CPU": 1}))
    assert parent is not None
    n.lend_cpu(parent)
    child = n.try_allocate(ResourceSet({"CPU": 1}))
    assert child is not None
    assert n.reclaim_cpu(parent) is True
    assert n.available["CPU"] == -1.0
    assert n.try_allocate(ResourceSet({"CPU": 0.5})) is None
    assert n.try_allocate(ResourceSet()) is not None  # CPU-free requests still fit
    n.release(child)
    n.release(parent)
    assert n.available == n.total


def test_release_while_lent_does_not_double_count() -> None:
    n = node(cpus=2)
    a = n.try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    n.lend_cpu(a)
    n.release(a)
    assert n.available == n.total
    # The lent state is gone with the allocation.
    with pytest.raises(ValueError):
        n.reclaim_cpu(a)


def test_lend_and_reclaim_are_idempotent() -> None:
    n = node(cpus=2)
    a = n.try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    assert n.reclaim_cpu(a) is False  # never lent
    assert n.available["CPU"] == 1.0
    assert n.lend_cpu(a) is True
    assert n.lend_cpu(a) is False
    assert n.available["CPU"] == 2.0
    assert n.reclaim_cpu(a) is True
    assert n.reclaim_cpu(a) is False
    assert n.available["CPU"] == 1.0


def test_lend_unknown_allocation_raises() -> None:
    a = node().try_allocate(ResourceSet({"CPU": 1}))
    assert a is not None
    with pytest.raises(ValueError, match="not held"):
        node().lend_cpu(a)


def test_try_allocate_accepts_plain_dict() -> None:
    a = node().try_allocate({"CPU": 1})
    assert a is not None and a.resources == ResourceSet({"CPU": 1})


# ------------------------------------------------------------------ build_node_resources

GIB = 1024**3


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """A fake 4-CPU, 100 GiB host with two H100s."""
    state = {"gpus": (["0", "1"], "H100"), "ram": 100 * GIB}
    monkeypatch.setattr(accelerators, "detect_gpus", lambda: state["gpus"])
    monkeypatch.setattr(resources, "total_memory_bytes", lambda: state["ram"])
    monkeypatch.setattr(resources, "_default_num_cpus", lambda: 4)
    return state


def test_build_defaults(machine) -> None:
    total, gpu_ids, accel = build_node_resources(None, None, None, None, None)
    assert gpu_ids == ["0", "1"] and accel == "H100"
    assert total == {
        "CPU": 4.0, "GPU": 2.0,
        "memory": float(int(100 * GIB * 0.7)),
        "object_store_memory": float(int(100 * GIB * 0.3)),
        "accelerator_type:H100": 1.0,
    }


def test_build_object_store_capped_at_200gb(machine) -> None:
    machine["ram"] = 2000 * 10**9
    total, _, _ = build_node_resources(None, None, None, None, None)
    assert total["object_store_memory"] == 200 * 10**9
    assert total["memory"] == 1400 * 10**9


def test_build_explicit_values_win(machine) -> None:
    total, _, _ = build_node_resources(2, None, {"disk": 3}, 5 * GIB, GIB)
    assert total["CPU"] == 2 and total["memory"] == 5 * GIB
    assert total["object_store_memory"] == GIB and total["disk"] == 3


def test_build_num_gpus_less_than_detected_uses_first_ids(machine) -> None:
    machine["gpus"] = (["4", "5", "6"], "A100")
    total, gpu_ids, accel = build_node_resources(None, 2, None, None, None)
    assert gpu_ids == ["4", "5"] and total["GPU"] == 2 and accel == "A100"


def test_build_num_gpus_without_detection_numbers_ids(machine) -> None:
    machine["gpus"] = ([], None)
    total, gpu_ids, accel = build_node_resources(None, 3, None, None, None)
    assert gpu_ids == ["0", "1", "2"] and total["GPU"] == 3 and accel is None
    assert not any(k.startswith("accelerator_type:") for k in total)


def test_build_num_gpus_more_than_detected_adds_fresh_ids(machine) -> None:
    machine["gpus"] = (["1"], "L4")
    _, gpu_ids, _ = build_node_resources(None, 3, None, None, None)
    assert gpu_ids == ["1", "0", "2"]


def test_build_zero_gpus_drops_gpu_and_accelerator(machine) -> None:
    total, gpu_ids, accel = build_node_resources(None, 0, None, None, None)
    assert gpu_ids == [] and accel is None
    assert "GPU" not in total and "accelerator_type:H100" not in total


def test_build_result_feeds_node_resources(machine) -> None:
    total, gpu_ids, _ = build_node_resources(None, None, None, None, None)
    n = NodeResources(total, gpu_ids)
    assert n.try_allocate(ResourceSet({"GPU": 1, "accelerator_type:H100": 0.001})) is not None


def test_build_unknown_ram_gives_no_memory_resources(machine) -> None:
    machine["ram"] = 0
    total, _, _ = build_node_resources(None, None, None, None, None)
    assert "memory" not in total and "object_store_memory" not in total


@pytest.mark.parametrize("kwargs, name", [
    ({"num_cpus": -1}, "num_cpus"),
    ({"num_cpus": float("nan")}, "num_cpus"),
    ({"num_cpus": "4"}, "num_cpus"),
    ({"num_gpus": -2}, "num_gpus"),
    ({"num_gpus": 1.5}, "num_gpus"),
    ({"memory": -5}, "memory"),
    ({"object_store_memory": float("inf")}, "object_store_memory"),
    ({"resources": {"disk": -1}}, "disk"),
    ({"resources": {"disk": math.nan}}, "disk"),
    ({"resources": {"disk": "lots"}}, "disk"),
])
def test_build_rejects_bad_quantities(machine, kwargs, name) -> None:
    args = {"num_cpus": None, "num_gpus": None, "resources": None, "memory": None,
            "object_store_memory": None, **kwargs}
    with pytest.raises(ValueError, match=name) as info:
        build_node_resources(**args)
    message = str(info.value)
    assert "e.g." in message or "integer" in message  # says how to fix


@pytest.mark.parametrize("bad_name", ["", 7])
def test_build_rejects_bad_resource_names(machine, bad_name) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        build_node_resources(None, None, {bad_name: 1}, None, None)


@pytest.mark.parametrize("reserved, keyword", [
    ("CPU", "num_cpus"), ("GPU", "num_gpus"), ("memory", "memory"),
])
def test_build_rejects_reserved_names_in_resources(machine, reserved, keyword) -> None:
    with pytest.raises(ValueError, match=f"{keyword}="):
        build_node_resources(None, None, {reserved: 1}, None, None)


def test_build_rejects_non_dict_resources(machine) -> None:
    with pytest.raises(ValueError, match="resources="):
        build_node_resources(None, None, ["disk"], None, None)  # type: ignore[arg-type]


def test_default_num_cpus_respects_affinity(monkeypatch) -> None:
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 64)
    assert resources._default_num_cpus() == 2
    monkeypatch.delattr(resources.os, "sched_getaffinity", raising=False)
    assert resources._default_num_cpus() == 64


def test_total_memory_bytes_is_plausible() -> None:
    ram = resources.total_memory_bytes()
    assert isinstance(ram, int) and ram > 64 * 1024**2


def test_total_memory_bytes_honours_lower_cgroup_limit(monkeypatch) -> None:
    limit = 64 * 1024**2
    monkeypatch.setattr(resources, "_read_int_file",
                        lambda path: limit if path.endswith("memory.max") else None)
    assert resources.total_memory_bytes() == limit
