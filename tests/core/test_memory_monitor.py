"""The memory monitor's pure parts: configuration, reading memory, choosing a victim."""
from __future__ import annotations

import pytest
from ember._private.memory_monitor import (
    Candidate,
    MemoryConfig,
    MemoryMonitor,
    Usage,
    choose_victim,
    oom_message,
    parse_cgroup,
    parse_meminfo,
    read_usage,
)


# ---------------------------------------------------------------- configuration
def test_config_defaults_match_ray():
    config = MemoryConfig.from_env({})
    assert (config.threshold, config.refresh_ms, config.enabled) == (0.95, 250, True)


def test_config_from_env_and_zero_refresh_disables():
    config = MemoryConfig.from_env({"EMBER_MEMORY_USAGE_THRESHOLD": "0.5",
                                    "EMBER_MEMORY_MONITOR_REFRESH_MS": "0"})
    assert config.threshold == 0.5 and not config.enabled


@pytest.mark.parametrize("env, names", [
    ({"EMBER_MEMORY_USAGE_THRESHOLD": "95"}, "EMBER_MEMORY_USAGE_THRESHOLD"),
    ({"EMBER_MEMORY_USAGE_THRESHOLD": "lots"}, "EMBER_MEMORY_USAGE_THRESHOLD"),
    ({"EMBER_MEMORY_MONITOR_REFRESH_MS": "-1"}, "EMBER_MEMORY_MONITOR_REFRESH_MS"),
    ({"EMBER_MEMORY_MONITOR_REFRESH_MS": "0.5"}, "EMBER_MEMORY_MONITOR_REFRESH_MS"),
])
def test_bad_config_names_the_variable(env, names):
    with pytest.raises(ValueError, match=names):
        MemoryConfig.from_env(env)


# ---------------------------------------------------------------- reading memory
def test_meminfo_used_is_total_minus_available():
    text = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n"
    assert parse_meminfo(text) == Usage(600 * 1024, 1000 * 1024)


def test_cgroup_usage_excludes_inactive_page_cache_and_no_limit_is_none():
    assert parse_cgroup("2000\n", "1500\n", "anon 1\ninactive_file 500\n",
                        "inactive_file") == Usage(1000, 2000)
    assert parse_cgroup("max\n", "1500", "", "inactive_file") is None
    assert parse_cgroup("9223372036854771712", "1500", "", "total_inactive_file") is None


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_read_usage_prefers_a_cgroup_limit(tmp_path):
    _write(tmp_path, "proc/meminfo", "MemTotal: 100 kB\nMemAvailable: 50 kB\n")
    assert read_usage(str(tmp_path)) == Usage(50 * 1024, 100 * 1024)
    _write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "1000")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.usage_in_bytes", "900")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.stat", "total_inactive_file 100\n")
    assert read_usage(str(tmp_path)) == Usage(800, 1000)            # cgroup v1
    _write(tmp_path, "sys/fs/cgroup/memory.max", "4000")
    _write(tmp_path, "sys/fs/cgroup/memory.current", "1000")
    assert read_usage(str(tmp_path)) == Usage(1000, 4000)           # v2 wins


def test_read_usage_of_this_machine_is_sane():
    usage = read_usage()
    assert usage.total > 0 and 0 < usage.used < usage.total


# ---------------------------------------------------------------- choosing a victim
def _task(worker, owner="driver", retriable=True, started=0.0):
    return Candidate(worker, 100, owner, retriable, started, name=f"task-{worker}")


def test_no_candidates_no_victim():
    assert choose_victim([]) is None


def test_retriable_work_dies_before_non_retriable_even_if_older():
    old_retriable = _task("a", retriable=True, started=1)
    new_fragile = _task("b", retriable=False, started=5)
    assert choose_victim([old_retriable, new_fragile]) is old_retriable


def test_most_recently_started_dies_first():
    tasks = [_task("a", started=1), _task("b", started=3), _task("c", started=2)]
    assert choose_victim(tasks).worker_id == "b"


def test_the_owner_with_most_workers_pays_first():
    fan_out = [_task("a", owner="o1", started=1), _task("b", owner="o1", started=2)]
    lone_newer = _task("c", owner="o2", started=9)
    assert choose_victim(fan_out + [lone_newer]).worker_id == "b"


def test_each_actor_is_its_own_group():
    actors = [Candidate(w, 1, "", True, s, is_actor=True) for w, s in (("a", 1), ("b", 2))]
    task = _task("t", owner="o", started=0)
    # Two actors with an empty owner must not count as one group of two.
    assert choose_victim(actors + [task]).worker_id == "b"


def test_message_names_node_usage_threshold_and_variable():
    msg = oom_message("10.0.0.2 (abc)", Usage(15 << 30, 16 << 30), 0.9, _task("w"))
    assert "10.0.0.2" in msg and "15.00 GiB" in msg and "94%" in msg and "90%" in msg
    assert "EMBER_MEMORY_USAGE_THRESHOLD" in msg and "task-w" in msg


# ---------------------------------------------------------------- the check loop
class _Fake:
    def __init__(self, fraction, candidates):
        self.usage = Usage(int(fraction * 1000), 1000)
        self.candidates = list(candidates)
        self.killed: list[tuple[str, str]] = []

    def monitor(self, threshold=0.9):
        return MemoryMonitor(MemoryConfig(threshold, 250), "node", lambda: self.candidates,
                             lambda c, m: self.killed.append((c.worker_id, m)),
                             read=lambda: self.usage)


def test_below_threshold_kills_nothing():
    fake = _Fake(0.5, [_task("a")])
    assert fake.monitor().check_once(now=0) is None and fake.killed == []


def test_above_threshold_kills_one_then_waits_for_it_to_go():
    fake = _Fake(0.95, [_task("a", started=1), _task("b", started=2)])
    mon = fake.monitor()
    assert mon.check_once(now=0).worker_id == "b"
    assert mon.check_once(now=5) is None          # b still listed: still dying
    fake.candidates = [c for c in fake.candidates if c.worker_id != "b"]
    assert mon.check_once(now=5.1).worker_id == "a"
    assert [w for w, _ in fake.killed] == ["b", "a"]
    assert "node" in fake.killed[0][1]


def test_nothing_to_kill_is_not_an_error():
    fake = _Fake(0.99, [])
    assert fake.monitor().check_once(now=0) is None
