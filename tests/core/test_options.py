"""Validation, merging and resource resolution of task and actor options."""
from __future__ import annotations

import pytest

from ember._private.options import (
    ACTOR_OPTIONS,
    DEFAULT_TASK_OPTIONS,
    RUNTIME_ENV_KEYS,
    TASK_OPTIONS,
    actor_resource_request,
    merge_options,
    merge_runtime_env,
    resource_request,
    validate_options,
)


def _rejects(opts: dict, name: str, *, for_actor: bool = False) -> str:
    """Assert validation fails and the message names ``name``; return the message."""
    with pytest.raises(ValueError) as info:
        validate_options(opts, for_actor=for_actor)
    message = str(info.value)
    assert name in message, message
    return message


# ------------------------------------------------------------------ option sets


def test_task_option_names_match_ray() -> None:
    assert TASK_OPTIONS == {
        "num_returns", "num_cpus", "num_gpus", "resources", "accelerator_type", "memory",
        "max_calls", "max_retries", "retry_exceptions", "runtime_env", "scheduling_strategy",
        "name", "label_selector", "placement_group", "placement_group_bundle_index",
        "placement_group_capture_child_tasks", "_metadata", "enable_task_events",
        "object_store_memory", "generator_backpressure_num_objects"}


def test_actor_option_names_match_ray() -> None:
    assert ACTOR_OPTIONS == {
        "num_cpus", "num_gpus", "resources", "accelerator_type", "memory", "object_store_memory",
        "max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups", "name",
        "namespace", "lifetime", "get_if_exists", "runtime_env", "scheduling_strategy",
        "label_selector", "max_pending_calls", "enable_task_events", "placement_group",
        "placement_group_bundle_index", "placement_group_capture_child_tasks", "_metadata"}


def test_default_task_options() -> None:
    assert dict(DEFAULT_TASK_OPTIONS) == {
        "num_returns": 1, "num_cpus": 1, "num_gpus": 0, "max_retries": 3,
        "retry_exceptions": False, "max_calls": 0}
    with pytest.raises(TypeError):
        DEFAULT_TASK_OPTIONS["num_cpus"] = 2  # type: ignore[index]


# ------------------------------------------------------------------ valid input


def test_valid_task_options_pass_through() -> None:
    opts = {
        "num_returns": 2, "num_cpus": 0.5, "num_gpus": 1, "resources": {"disk": 2},
        "accelerator_type": "H100", "memory": 1024, "max_calls": 1, "max_retries": -1,
        "retry_exceptions": [ValueError], "runtime_env": {"env_vars": {"A": "1"}},
        "scheduling_strategy": "SPREAD", "name": "f", "label_selector": {"zone": "a"},
        "placement_group": None, "placement_group_bundle_index": 0,
        "placement_group_capture_child_tasks": True, "_metadata": {},
        "enable_task_events": False, "object_store_memory": 10,
        "generator_backpressure_num_objects": 4,
    }
    out = validate_options(opts)
    assert out.keys() == opts.keys()
    assert out["retry_exceptions"] == (ValueError,)
    assert out["num_cpus"] == 0.5 and out["runtime_env"] == {"env_vars": {"A": "1"}}


def test_valid_actor_options_pass_through() -> None:
    opts = {
        "num_cpus": 1, "num_gpus": 0.25, "max_restarts": -1, "max_task_retries": 2,
        "max_concurrency": 8, "concurrency_groups": {"io": 2}, "name": "a",
        "namespace": "ns", "lifetime": "detached", "get_if_exists": True,
        "max_pending_calls": 10,
    }
    assert validate_options(opts, for_actor=True) == opts


def test_validate_returns_copy_detached_from_input() -> None:
    env = {"env_vars": {"A": "1"}}
    res = {"disk": 1}
    opts = {"runtime_env": env, "resources": res}
    out = validate_options(opts)
    env["env_vars"]["A"] = "changed"
    res["disk"] = 99
    assert out["runtime_env"]["env_vars"]["A"] == "1"
    assert out["resources"]["disk"] == 1
    assert out is not opts


def test_none_values_mean_default_and_are_kept() -> None:
    out = validate_options({"num_cpus": None, "runtime_env": None, "num_returns": None})
    assert out == {"num_cpus": None, "runtime_env": None, "num_returns": None}


@pytest.mark.parametrize("value", [0, 3, "streaming", "dynamic"])
def test_num_returns_accepts(value) -> None:
    assert validate_options({"num_returns": value})["num_returns"] == value


@pytest.mark.parametrize("value", [0.5, 1, 2, 0])
def test_num_gpus_accepts_fractions_up_to_one_and_whole_numbers(value) -> None:
    assert validate_options({"num_gpus": value})["num_gpus"] == value


# ------------------------------------------------------------------ unknown names


def test_unknown_task_option_suggests_closest() -> None:
    message = _rejects({"num_cpu": 2}, "num_cpu")
    assert message == "unknown option 'num_cpu' for a remote function; did you mean 'num_cpus'?"


def test_unknown_actor_option_suggests_closest() -> None:
    message = _rejects({"max_concurency": 2}, "max_concurency", for_actor=True)
    assert "for an actor class" in message and "did you mean 'max_concurrency'?" in message


def test_unknown_option_without_close_match_lists_valid_names() -> None:
    message = _rejects({"zzzzzz": 1}, "zzzzzz")
    assert "valid options are" in message and "num_cpus" in message


def test_task_only_option_on_actor_is_explained() -> None:
    message = _rejects({"max_retries": 2}, "max_retries", for_actor=True)
    assert "only valid for remote functions" in message
    assert "did you mean 'max_task_retries'?" in message


def test_actor_only_option_on_task_is_rejected() -> None:
    message = _rejects({"lifetime": "detached"}, "lifetime")
    assert "only valid for actor classes" in message


def test_non_dict_options_rejected() -> None:
    with pytest.raises(ValueError, match="dict"):
        validate_options([("num_cpus", 1)])  # type: ignore[arg-type]


# ------------------------------------------------------------------ resources


@pytest.mark.parametrize("name", ["num_cpus", "num_gpus"])
@pytest.mark.parametrize("value", [-1, -0.5, "1", True, float("nan"), float("inf"), [1]])
def test_bad_cpu_gpu_quantities(name, value) -> None:
    _rejects({name: value}, name)


def test_num_gpus_fractional_above_one_rejected() -> None:
    message = _rejects({"num_gpus": 1.5}, "num_gpus")
    assert "whole number" in message


def test_resource_precision_beyond_four_decimals_rejected() -> None:
    assert "0.0001" in _rejects({"num_cpus": 1 / 3}, "num_cpus")


def test_num_cpus_fraction_above_one_allowed() -> None:
    assert validate_options({"num_cpus": 1.5})["num_cpus"] == 1.5


@pytest.mark.parametrize("value", [-1, "1GB", float("nan"), True])
def test_bad_memory(value) -> None:
    _rejects({"memory": value}, "memory")
    _rejects({"object_store_memory": value}, "object_store_memory")


@pytest.mark.parametrize("resources, needle", [
    ({"disk": -1}, "disk"),
    ({"disk": "2"}, "disk"),
    ({"disk": float("nan")}, "disk"),
    ({1: 1}, "resources"),
    ({"": 1}, "resources"),
    (["disk"], "resources"),
])
def test_bad_custom_resources(resources, needle) -> None:
    _rejects({"resources": resources}, needle)


@pytest.mark.parametrize("reserved, keyword", [
    ("CPU", "num_cpus"), ("GPU", "num_gpus"), ("memory", "memory")])
def test_reserved_names_in_resources_point_to_keyword(reserved, keyword) -> None:
    message = _rejects({"resources": {reserved: 1}}, reserved)
    assert f"'{keyword}' option" in message


def test_accelerator_type_must_be_str() -> None:
    _rejects({"accelerator_type": 100}, "accelerator_type")


# ------------------------------------------------------------------ counts and retries


@pytest.mark.parametrize("value", [-1, 1.0, "2", True, "stream"])
def test_bad_num_returns(value) -> None:
    _rejects({"num_returns": value}, "num_returns")


@pytest.mark.parametrize("value", [-2, 1.5, "3", False])
def test_bad_max_retries(value) -> None:
    _rejects({"max_retries": value}, "max_retries")


def test_max_retries_minus_one_means_forever() -> None:
    assert validate_options({"max_retries": -1})["max_retries"] == -1


@pytest.mark.parametrize("value", [-1, 2.0, "1"])
def test_bad_max_calls(value) -> None:
    _rejects({"max_calls": value}, "max_calls")


@pytest.mark.parametrize("value", [1, "yes", [ValueError, "KeyError"], [ValueError()], [int]])
def test_bad_retry_exceptions(value) -> None:
    _rejects({"retry_exceptions": value}, "retry_exceptions")


def test_retry_exceptions_accepts_bool_and_exception_classes() -> None:
    assert validate_options({"retry_exceptions": True})["retry_exceptions"] is True
    out = validate_options({"retry_exceptions": (KeyError, KeyboardInterrupt)})
    assert out["retry_exceptions"] == (KeyError, KeyboardInterrupt)


@pytest.mark.parametrize("name", ["max_restarts", "max_task_retries"])
@pytest.mark.parametrize("value", [-2, 0.5, "1", True])
def test_bad_actor_restart_counts(name, value) -> None:
    _rejects({name: value}, name, for_actor=True)


@pytest.mark.parametrize("value", [0, -1, 2.5, "4"])
def test_bad_max_concurrency(value) -> None:
    _rejects({"max_concurrency": value}, "max_concurrency", for_actor=True)


@pytest.mark.parametrize("value", [0, -2, 1.5])
def test_bad_max_pending_calls(value) -> None:
    _rejects({"max_pending_calls": value}, "max_pending_calls", for_actor=True)


@pytest.mark.parametrize("value", [0, -2, "x"])
def test_bad_generator_backpressure(value) -> None:
    _rejects({"generator_backpressure_num_objects": value}, "generator_backpressure_num_objects")


def test_bad_concurrency_groups() -> None:
    _rejects({"concurrency_groups": {"io": 0}}, "concurrency_groups", for_actor=True)
    _rejects({"concurrency_groups": "io"}, "concurrency_groups", for_actor=True)


# ------------------------------------------------------------------ runtime_env


def test_runtime_env_must_be_dict() -> None:
    _rejects({"runtime_env": "pip install x"}, "runtime_env")


def test_runtime_env_unknown_key_rejected_with_suggestion() -> None:
    message = _rejects({"runtime_env": {"env_var": {}}}, "env_var")
    assert "did you mean 'env_vars'?" in message


def test_runtime_env_all_known_keys_accepted() -> None:
    env = {key: None for key in RUNTIME_ENV_KEYS}
    assert validate_options({"runtime_env": env})["runtime_env"].keys() == RUNTIME_ENV_KEYS


def test_runtime_env_env_vars_value_must_be_str() -> None:
    message = _rejects({"runtime_env": {"env_vars": {"THREADS": 4}}}, "THREADS")
    assert "env_vars" in message and "str" in message


def test_runtime_env_env_vars_key_must_be_str() -> None:
    _rejects({"runtime_env": {"env_vars": {4: "x"}}}, "4")


def test_runtime_env_env_vars_must_be_dict() -> None:
    _rejects({"runtime_env": {"env_vars": ["A=1"]}}, "env_vars")


# ------------------------------------------------------------------ actor-specific


@pytest.mark.parametrize("value", ["forever", 1, "DETACHED"])
def test_bad_lifetime(value) -> None:
    _rejects({"lifetime": value}, "lifetime", for_actor=True)


@pytest.mark.parametrize("value", ["detached", "non_detached", None])
def test_lifetime_accepts(value) -> None:
    assert validate_options({"lifetime": value}, for_actor=True)["lifetime"] == value


def test_actor_name_must_be_non_empty_str() -> None:
    _rejects({"name": ""}, "name", for_actor=True)
    _rejects({"name": 3}, "name", for_actor=True)


def test_get_if_exists_requires_name() -> None:
    _rejects({"get_if_exists": True}, "get_if_exists", for_actor=True)


def test_bool_options_reject_non_bools() -> None:
    _rejects({"get_if_exists": "yes", "name": "a"}, "get_if_exists", for_actor=True)
    _rejects({"enable_task_events": 1}, "enable_task_events")
    _rejects({"placement_group_capture_child_tasks": "no"}, "placement_group_capture_child_tasks")


def test_bad_scheduling_strategy_string() -> None:
    _rejects({"scheduling_strategy": "RANDOM"}, "scheduling_strategy")


def test_scheduling_strategy_objects_pass_through() -> None:
    strategy = object()
    assert validate_options({"scheduling_strategy": strategy})["scheduling_strategy"] is strategy


def test_bad_label_selector() -> None:
    _rejects({"label_selector": {"zone": 1}}, "label_selector")


def test_bad_namespace_and_bundle_index() -> None:
    _rejects({"namespace": 5}, "namespace", for_actor=True)
    _rejects({"placement_group_bundle_index": -2}, "placement_group_bundle_index")


# ------------------------------------------------------------------ merging


def test_merge_override_wins() -> None:
    base = {"num_cpus": 2, "max_retries": 1}
    assert merge_options(base, {"num_cpus": 4}) == {"num_cpus": 4, "max_retries": 1}
    assert base == {"num_cpus": 2, "max_retries": 1}


def test_merge_explicit_none_overrides() -> None:
    assert merge_options({"num_cpus": 2}, {"num_cpus": None}) == {"num_cpus": None}


def test_merge_runtime_env_merges_env_vars_key_by_key() -> None:
    base = {"runtime_env": {"env_vars": {"A": "1", "B": "1"}, "pip": ["x"]}}
    override = {"runtime_env": {"env_vars": {"B": "2", "C": "2"}, "working_dir": "."}}
    merged = merge_options(base, override)
    assert merged["runtime_env"] == {
        "env_vars": {"A": "1", "B": "2", "C": "2"}, "pip": ["x"], "working_dir": "."}
    assert base["runtime_env"]["env_vars"] == {"A": "1", "B": "1"}  # input untouched


def test_merge_runtime_env_child_replaces_other_fields() -> None:
    assert merge_runtime_env({"pip": ["a"]}, {"pip": ["b"]}) == {"pip": ["b"]}
    assert merge_runtime_env(None, {"pip": ["b"]}) == {"pip": ["b"]}
    assert merge_runtime_env({"pip": ["a"]}, None) == {"pip": ["a"]}
    assert merge_runtime_env(None, None) is None


def test_merge_runtime_env_into_absent_base() -> None:
    merged = merge_options({}, {"runtime_env": {"env_vars": {"A": "1"}}})
    assert merged == {"runtime_env": {"env_vars": {"A": "1"}}}


# ------------------------------------------------------------------ resource requests


def test_task_request_defaults_to_one_cpu() -> None:
    assert resource_request({}) == {"CPU": 1.0}
    assert resource_request({"num_cpus": None}) == {"CPU": 1.0}


def test_task_request_drops_zeros() -> None:
    assert resource_request({"num_cpus": 0, "num_gpus": 0, "memory": 0}) == {}


def test_task_request_includes_everything() -> None:
    opts = validate_options({"num_cpus": 2, "num_gpus": 0.5, "memory": 100,
                             "accelerator_type": "H100", "resources": {"disk": 1.5},
                             "object_store_memory": 7})
    assert resource_request(opts) == {
        "CPU": 2.0, "GPU": 0.5, "memory": 100.0, "accelerator_type:H100": 0.001, "disk": 1.5}


def test_default_actor_placed_with_one_cpu_but_holds_none() -> None:
    placement, lifetime = resource_request({}, for_actor=True)
    assert placement == {"CPU": 1.0} and lifetime == {}
    assert actor_resource_request({"memory": 10}) == ({"CPU": 1.0, "memory": 10.0},
                                                       {"memory": 10.0})


def test_actor_explicit_num_cpus_used_for_both() -> None:
    assert actor_resource_request({"num_cpus": 2}) == ({"CPU": 2.0}, {"CPU": 2.0})


def test_actor_with_gpu_only_holds_no_cpu() -> None:
    # As in Ray: naming any resource switches CPU's default to 0 for both.
    assert actor_resource_request({"num_gpus": 1}) == ({"GPU": 1.0}, {"GPU": 1.0})
    assert actor_resource_request({"resources": {"disk": 1}}) == ({"disk": 1.0}, {"disk": 1.0})


def test_actor_explicit_zero_cpus_places_with_nothing() -> None:
    assert actor_resource_request({"num_cpus": 0}) == ({}, {})
