"""The state commands of the command line (issue #7): ``ember list/get/summary/memory/
timeline/logs``, on a running cluster through click's runner with ``--address``
(the commands connect like ``ember status``, not as a driver), plus the pure
renderers and one run of the real ``ember`` entry point.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import ember
from ember._private import state_format
from ember._private.cli import cli
from ember._private.protos import ember_pb2 as pb
from ember.testing import wait_for_condition
from ember.util import state
from ember.util.state.common import NodeState, TaskState


@ember.remote
def cli_square(x):
    print(f"token-{x}")
    return x * x


@ember.remote
def cli_boom():
    raise ValueError("cli boom")


@ember.remote
class Talker:
    def say(self, word):
        print(f"talker says {word}")
        return word

    def maybe(self, i):
        if i % 2 == 0:
            print(f"maybe says {i}")
        return i


class Env:
    pass


@pytest.fixture(scope="module")
def env(cluster):
    from ember._private import worker_state
    e = Env()
    e.address = worker_state.core.gcs_address
    e.refs = [cli_square.remote(i) for i in (1, 2)]
    assert ember.get(e.refs) == [1, 4]
    with pytest.raises(ValueError):
        ember.get(cli_boom.remote())
    e.talker = Talker.remote()
    assert ember.get(e.talker.say.remote("hello-actor")) == "hello-actor"
    e.put = ember.put(b"y" * 200_000)

    def recorded() -> bool:
        tasks = state.list_tasks(limit=1000)
        ran = [t.name for t in tasks if t.worker_pid and t.state in ("FINISHED", "FAILED")]
        return ran.count("cli_square") == 2 and "cli_boom" in ran and "Talker.say" in ran

    wait_for_condition(recorded, timeout=30)
    return e


def ember_cli(env, *args):
    result = CliRunner().invoke(cli, [*args, "--address", env.address],
                                catch_exceptions=False)
    return result


# ------------------------------------------------------------------ list
def test_list_tasks_as_a_table_and_as_json(env):
    table = ember_cli(env, "list", "tasks")
    assert table.exit_code == 0, table.output
    assert "TASK_ID" in table.output and "cli_square" in table.output
    assert "ERROR_MESSAGE" not in table.output          # a detail column
    out = ember_cli(env, "list", "tasks", "--format", "json", "--filter", "name=cli_square")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["state"] for r in rows] == ["FINISHED", "FINISHED"]
    assert {r["task_id"] for r in rows} == {r.task_id().hex() for r in env.refs}


def test_list_filters_detail_and_limit(env):
    failed = ember_cli(env, "list", "tasks", "-f", "state=FAILED", "--detail", "--format",
                       "json")
    (row,) = json.loads(failed.output)
    assert row["name"] == "cli_boom" and "cli boom" in row["error_message"]
    others = json.loads(ember_cli(env, "list", "tasks", "-f", "name!=cli_square",
                                  "--format", "json", "--limit", "1000").output)
    assert others and "cli_square" not in {r["name"] for r in others}
    limited = ember_cli(env, "list", "tasks", "--limit", "1")
    assert limited.exit_code == 0 and "more than 1 found" in limited.output
    detail = ember_cli(env, "list", "tasks", "--detail", "-f", "name=cli_boom")
    assert "ERROR_MESSAGE" in detail.output


def test_a_bad_filter_is_a_usage_error_naming_the_fix(env):
    bad = ember_cli(env, "list", "tasks", "--filter", "state")
    assert bad.exit_code == 2 and "key=value" in bad.output
    unknown = ember_cli(env, "list", "actors", "--filter", "colour=red")
    assert unknown.exit_code == 1 and "filter by one of" in unknown.output


@pytest.mark.parametrize("resource", ["nodes", "actors", "objects", "placement-groups", "jobs",
                                      "workers"])
def test_every_resource_lists(env, resource):
    out = ember_cli(env, "list", resource, "--format", "json")
    assert out.exit_code == 0, out.output
    assert isinstance(json.loads(out.output), list)


# ------------------------------------------------------------------ get, summary
def test_get_shows_one_record_or_says_it_is_unknown(env):
    actor_id = env.talker._actor_id.hex()
    out = ember_cli(env, "get", "actors", actor_id)
    assert out.exit_code == 0, out.output
    assert "actor_id:" in out.output and actor_id in out.output and "ALIVE" in out.output
    node = json.loads(ember_cli(env, "get", "nodes", ember.get_runtime_context().get_node_id(),
                                "--format", "json").output)
    assert node["is_head_node"] is True and node["state"] == "ALIVE"
    missing = ember_cli(env, "get", "tasks", "ab" * 16)
    assert missing.exit_code == 1 and "no task with id" in missing.output


def test_summary_counts(env):
    tasks = ember_cli(env, "summary", "tasks")
    assert tasks.exit_code == 0, tasks.output
    assert "FUNC_OR_CLASS_NAME" in tasks.output and "cli_boom" in tasks.output
    summary = json.loads(ember_cli(env, "summary", "tasks", "--format", "json").output)
    assert summary["cluster"]["summary"]["cli_square"]["state_counts"] == {"FINISHED": 2}
    actors = json.loads(ember_cli(env, "summary", "actors", "--format", "json").output)
    assert actors["cluster"]["summary"]["Talker"]["state_counts"] == {"ALIVE": 1}
    objects = ember_cli(env, "summary", "objects")
    assert objects.exit_code == 0 and "TOTAL_OBJECTS" in objects.output


# ------------------------------------------------------------------ memory, timeline
def test_memory_shows_references_sizes_and_store_totals(env):
    out = ember_cli(env, "memory", "--units", "KB")
    assert out.exit_code == 0, out.output
    assert env.put.hex() in out.output and "LOCAL_REFERENCE" in out.output
    assert "Aggregate object store stats" in out.output and "Spilled" in out.output
    stats = ember_cli(env, "memory", "--stats-only")
    assert env.put.hex() not in stats.output and "Shared memory usage" in stats.output


def test_timeline_writes_a_chrome_trace(env, tmp_path):
    path = tmp_path / "trace.json"
    out = ember_cli(env, "timeline", "--output", str(path))
    assert out.exit_code == 0, out.output
    trace = json.loads(path.read_text())
    runs = [e for e in trace if e["ph"] == "X"]
    assert {"cli_square", "cli_boom", "Talker.say"} <= {e["name"] for e in runs}
    assert all(e["dur"] >= 0 and isinstance(e["tid"], int) for e in runs)


# ------------------------------------------------------------------ logs
def test_logs_lists_files_and_shows_an_actors_and_a_tasks_output(env):
    listing = ember_cli(env, "logs")
    assert listing.exit_code == 0, listing.output
    assert "worker-" in listing.output and "node_manager.log" in listing.output

    def shows(args, text) -> bool:
        return text in ember_cli(env, "logs", *args).output

    wait_for_condition(lambda: shows(["--actor-id", env.talker._actor_id.hex()],
                                     "talker says hello-actor"), timeout=20)
    second = env.refs[1].task_id().hex()
    wait_for_condition(lambda: shows(["--task-id", second], "token-2"), timeout=20)
    only_second = ember_cli(env, "logs", "--task-id", second).output
    assert "token-1" not in only_second and ":task_name:" not in only_second
    tail = ember_cli(env, "logs", "node_manager.log", "--tail", "1")
    assert tail.exit_code == 0, tail.output
    nothing = ember_cli(env, "logs", "no-such.log")
    assert nothing.exit_code == 1 and "no log for file" in nothing.output


def test_logs_by_task_id_of_actor_calls_that_print_or_stay_silent(env):
    # Markers for calls under the same name are written only before output
    # (task_marks.py): a silent call shows nothing, not its neighbours' lines.
    refs = [env.talker.maybe.remote(i) for i in range(4)]
    assert ember.get(refs) == [0, 1, 2, 3]

    def logs_of(i: int) -> str:
        out = ember_cli(env, "logs", "--task-id", refs[i].task_id().hex())
        assert out.exit_code == 0, out.output
        return out.output
    wait_for_condition(lambda: "maybe says 2" in logs_of(2), timeout=20)
    assert "maybe says 0" not in logs_of(2)
    assert "maybe says" not in logs_of(1) and "maybe says" not in logs_of(3)
    assert "maybe says 0" in logs_of(0) and "maybe says 2" not in logs_of(0)


def test_logs_follow_streams_what_the_actor_prints_later(env):
    import queue
    import signal
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "ember._private.cli", "logs", "--actor-id",
                             env.talker._actor_id.hex(), "--follow", "--address", env.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    try:
        seen: list[str] = []

        def printed(text: str) -> bool:
            while not lines.empty():
                seen.append(lines.get())
            return any(text in ln for ln in seen)

        wait_for_condition(lambda: printed("talker says hello-actor"), timeout=60)
        assert ember.get(env.talker.say.remote("said-later")) == "said-later"
        wait_for_condition(lambda: printed("talker says said-later"), timeout=30)
        assert proc.poll() is None                   # still following
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ the real entry point
def test_the_ember_command_has_the_state_commands(env):
    out = subprocess.run([sys.executable, "-m", "ember._private.cli", "list", "nodes",
                          "--address", env.address, "--format", "json"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    (node,) = json.loads(out.stdout)
    assert node["node_id"] == ember.get_runtime_context().get_node_id()


# ------------------------------------------------------------------ renderers (pure)
def test_render_list_table_json_and_truncation_note():
    node = NodeState("n1", "10.0.0.1", True, "ALIVE", None, "10.0.0.1", {"CPU": 2.0}, {})
    table = state_format.render_list([node], NodeState.list_columns(), "table", more=True)
    assert "NODE_ID" in table and "CPU: 2.0" in table and "more than 1 found" in table
    assert "START_TIME_MS" not in table
    assert json.loads(state_format.render_list([node], [], "json"))[0]["node_ip"] == "10.0.0.1"
    assert state_format.render_list([], ["a"], "table") == "(none)"


def test_render_record_and_summary():
    task = TaskState("t1", 0, "f", "FAILED", "00000001", None, "NORMAL_TASK", "f", "", None,
                     None, None, "TASK_EXECUTION_EXCEPTION",
                     events=[{"state": "FAILED", "created_ms": 5}])
    text = state_format.render_record(task, "table")
    assert "state:" in text and "FAILED" in text and "events:" in text
    summary = {"cluster": {"summary": {"f": {"func_or_class_name": "f", "type": "NORMAL_TASK",
                                             "state_counts": {"FINISHED": 2}}},
                           "total_tasks": 2, "summary_by": "func_name"}}
    out = state_format.render_summary("tasks", summary, "table")
    assert "total_tasks: 2" in out and "FINISHED: 2" in out


def test_render_memory_groups_by_node_and_sums_the_stores():
    rows = [{"object_id": "aa", "object_size": 2048, "task_status": "FINISHED",
             "reference_type": "LOCAL_REFERENCE", "call_site": "disabled", "type": "DRIVER",
             "pid": 1, "ip": "10.0.0.1", "node_id": "n1", "is_owner": True},
            {"object_id": "aa", "object_size": None, "task_status": "NIL",
             "reference_type": "USED_BY_PENDING_TASK", "call_site": "disabled",
             "type": "WORKER", "pid": 2, "ip": "10.0.0.1", "node_id": "n1", "is_owner": False}]
    status = pb.NodeStatus(store_used_bytes=3 << 20, store_num_objects=1)
    out = state_format.render_memory(rows, {"n1": status}, {"n1": "10.0.0.1"}, units="KB")
    assert "--- Summary for node address: 10.0.0.1 (n1) ---" in out
    assert "2.000 KB" in out and "1, (0.000 KB)" in out        # the borrower's row counts 0
    assert "Shared memory usage 3.000 MB, 1 objects" in out
