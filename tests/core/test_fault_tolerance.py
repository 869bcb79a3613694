"""Ray's fault-tolerance guarantees, each checked by really killing processes (kill -9).

Tasks: retried on worker death up to ``max_retries`` (default 3, -1 forever, never
after ``cancel``), on application errors with ``retry_exceptions``, and
WorkerCrashedError when retries run out. Actors: ``max_restarts`` re-runs the
constructor in a new process, ``max_task_retries`` decides at-most-once vs
at-least-once (in order), ActorUnavailableError vs ActorDiedError. Owners: a
borrower's ``get`` raises OwnerDiedError once the owner is gone, and what the dead
process owned (actors, leases of its tasks) is cleaned up.
"""
from __future__ import annotations

import os
import signal
import time

import ember
import pytest
from ember.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    OwnerDiedError,
    TaskCancelledError,
    WorkerCrashedError,
)
from ember.testing import pid_alive, wait_for_condition


def _lines(path) -> list[str]:
    try:
        with open(path) as f:
            return [line for line in f.read().splitlines() if line]
    except FileNotFoundError:
        return []


def _kill_attempts(path, kills: int, timeout: float = 60) -> list[int]:
    """Wait for each attempt to note its pid in ``path``, and kill -9 it; ``kills`` times."""
    killed = []
    for k in range(kills):
        wait_for_condition(lambda k=k: len(_lines(path)) > k, timeout=timeout,
                           message=f"attempt {k + 1} never started")
        pid = int(_lines(path)[k].split()[0])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    return killed


@ember.remote
def note_pid_and_wait(path, finish_at):
    """Append this attempt's pid; attempt number ``finish_at`` returns, earlier ones hang."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(path) as f:
        attempt = len([line for line in f if line.strip()])
    if attempt >= finish_at:
        return attempt
    time.sleep(120)


def _all_cpus_free(timeout: float = 20) -> None:
    wait_for_condition(
        lambda: ember.available_resources().get("CPU") == ember.cluster_resources().get("CPU"),
        timeout=timeout, message=lambda: f"resources still held: {ember.available_resources()}")


# ---------------------------------------------------------------- tasks
def test_tasks_are_retried_on_worker_death_three_times_by_default(cluster, tmp_path):
    path = tmp_path / "attempts"
    ref = note_pid_and_wait.remote(str(path), finish_at=4)
    _kill_attempts(path, 3)
    assert ember.get(ref, timeout=60) == 4


def test_worker_crashed_error_once_max_retries_run_out(cluster, tmp_path):
    path = tmp_path / "attempts"
    ref = note_pid_and_wait.options(max_retries=1).remote(str(path), finish_at=99)
    _kill_attempts(path, 2)
    with pytest.raises(WorkerCrashedError, match="no retries are left"):
        ember.get(ref, timeout=30)          # at once, not after some long timeout
    time.sleep(0.5)
    assert len(_lines(path)) == 2           # no third attempt


def test_max_retries_minus_one_retries_forever(cluster, tmp_path):
    path = tmp_path / "attempts"
    ref = note_pid_and_wait.options(max_retries=-1).remote(str(path), finish_at=6)
    _kill_attempts(path, 5)
    assert ember.get(ref, timeout=60) == 6


def test_a_cancelled_task_is_never_retried(cluster, tmp_path):
    path = tmp_path / "attempts"
    ref = note_pid_and_wait.options(max_retries=3).remote(str(path), finish_at=99)
    wait_for_condition(lambda: len(_lines(path)) == 1, timeout=30)
    ember.cancel(ref, force=True)           # kills the worker: it must not come back
    with pytest.raises(TaskCancelledError):
        ember.get(ref, timeout=30)
    time.sleep(1.0)
    assert len(_lines(path)) == 1
    _all_cpus_free()


@ember.remote
def fail_until(path, succeed_at, error_name):
    with open(path, "a") as f:
        f.write("x\n")
    with open(path) as f:
        attempt = len([line for line in f if line.strip()])
    if attempt < succeed_at:
        raise {"ValueError": ValueError, "KeyError": KeyError}[error_name](f"attempt {attempt}")
    return attempt


def test_retry_exceptions_true_retries_application_errors(cluster, tmp_path):
    path = tmp_path / "attempts"
    ref = fail_until.options(retry_exceptions=True, max_retries=3).remote(
        str(path), 3, "ValueError")
    assert ember.get(ref, timeout=60) == 3
    # Without retry_exceptions an application error is final.
    once = tmp_path / "once"
    with pytest.raises(ValueError, match="attempt 1"):
        ember.get(fail_until.options(max_retries=3).remote(str(once), 3, "ValueError"),
                  timeout=60)
    assert len(_lines(once)) == 1


def test_retry_exceptions_list_retries_only_the_listed_errors(cluster, tmp_path):
    listed, other = tmp_path / "listed", tmp_path / "other"
    retry = fail_until.options(retry_exceptions=[ValueError], max_retries=2)
    assert ember.get(retry.remote(str(listed), 3, "ValueError"), timeout=60) == 3
    with pytest.raises(KeyError):
        ember.get(retry.remote(str(other), 3, "KeyError"), timeout=60)
    assert len(_lines(other)) == 1
    # Retries of listed errors stop at max_retries too: the last error is raised.
    capped = tmp_path / "capped"
    with pytest.raises(ValueError, match="attempt 3"):
        ember.get(retry.remote(str(capped), 9, "ValueError"), timeout=60)


# ---------------------------------------------------------------- actors
@ember.remote
class Journal:
    """Notes every construction and every call (pid, what) in a file that outlives it."""

    def __init__(self, path):
        self.path = path
        self.calls = 0
        self._note("init")

    def _note(self, what):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} {what}\n")

    def pid(self):
        return os.getpid()

    def call(self, i, hold=0.0):
        self._note(f"call {i}")
        self.calls += 1
        time.sleep(hold)
        return i

    def count(self):
        return self.calls


def _call_through_restart(method, *args, timeout: float = 60):
    """Call until it succeeds: a call that reached the dying process (before this
    caller learned of the death) fails with ActorUnavailableError, as in Ray."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ember.get(method.remote(*args), timeout=timeout)
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _entries(path, what_prefix):
    return [line.split(" ", 1) for line in _lines(path) if line.split(" ", 1)[1].startswith(
        what_prefix)]


def test_max_restarts_reruns_the_constructor_in_a_new_process(cluster, tmp_path):
    path = tmp_path / "journal"
    j = Journal.options(max_restarts=1).remote(str(path))
    first = ember.get(j.pid.remote(), timeout=30)
    os.kill(first, signal.SIGKILL)
    second = _call_through_restart(j.pid)
    assert second != first
    inits = _entries(path, "init")
    assert [int(pid) for pid, _ in inits] == [first, second]
    assert ember.get(j.count.remote()) == 0           # state was rebuilt from scratch
    os.kill(second, signal.SIGKILL)                   # no restarts left: dead for good
    with pytest.raises(ActorDiedError, match="killed by signal 9"):
        ember.get(j.pid.remote(), timeout=60)
    with pytest.raises(ActorDiedError):
        ember.get(j.pid.remote(), timeout=10)


def test_actors_are_not_restarted_by_default(cluster, tmp_path):
    j = Journal.remote(str(tmp_path / "journal"))
    os.kill(ember.get(j.pid.remote(), timeout=30), signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        ember.get(j.pid.remote(), timeout=60)
    assert len(_entries(tmp_path / "journal", "init")) == 1


def test_max_restarts_minus_one_restarts_forever(cluster, tmp_path):
    path = tmp_path / "journal"
    j = Journal.options(max_restarts=-1).remote(str(path))
    pids = []
    for _ in range(4):
        pid = _call_through_restart(j.pid)
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)
    assert _call_through_restart(j.call, 7) == 7
    assert len(set(pids)) == 4 and len(_entries(path, "init")) == 5
    ember.kill(j)


def test_max_task_retries_zero_is_at_most_once_with_actor_unavailable_error(cluster, tmp_path):
    # The call in flight when the process dies may or may not have run: with
    # max_task_retries=0 it is not resent, and fails with ActorUnavailableError
    # while the actor restarts (ActorDiedError is for actors dead for good).
    path = tmp_path / "journal"
    j = Journal.options(max_restarts=1).remote(str(path))
    pid = ember.get(j.pid.remote(), timeout=30)
    ref = j.call.remote(1, 30)
    wait_for_condition(lambda: _entries(path, "call 1"), timeout=30)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorUnavailableError):
        ember.get(ref, timeout=60)
    assert _call_through_restart(j.count) == 0       # the new incarnation never ran it
    assert len(_entries(path, "call 1")) == 1
    ember.kill(j)


def test_max_task_retries_resends_interrupted_calls_in_submission_order(cluster, tmp_path):
    path = tmp_path / "journal"
    j = Journal.options(max_restarts=1, max_task_retries=-1).remote(str(path))
    pid = ember.get(j.pid.remote(), timeout=30)
    first = j.call.remote(0, 2.0)                 # running when the process dies
    rest = [j.call.remote(i) for i in range(1, 10)]   # queued behind it
    wait_for_condition(lambda: _entries(path, "call 0"), timeout=30)
    os.kill(pid, signal.SIGKILL)
    assert ember.get([first] + rest, timeout=90) == list(range(10))
    new_pid = str(ember.get(j.pid.remote(), timeout=30))
    order = [int(what.split()[1]) for p, what in _entries(path, "call") if p == new_pid]
    assert order == list(range(10))               # at least once, and in order
    ember.kill(j)


def test_kill_with_no_restart_false_restarts_the_actor(cluster, tmp_path):
    path = tmp_path / "journal"
    j = Journal.options(max_restarts=1).remote(str(path))
    first = ember.get(j.pid.remote(), timeout=30)
    ember.kill(j, no_restart=False)
    assert ember.get(j.pid.remote(), timeout=60) != first
    assert not pid_alive(first)
    assert len(_entries(path, "init")) == 2
    ember.kill(j)


# ---------------------------------------------------------------- owners
@ember.remote
class Owner:
    def make(self, value):
        return [ember.put(value)]          # the ref inside is owned by this actor

    def pid(self):
        return os.getpid()


@pytest.mark.parametrize("size", ["inline", "shared-memory"])
def test_get_raises_owner_died_error_once_the_owner_is_gone(cluster, size):
    value = b"x" * (10 if size == "inline" else 2 << 20)
    owner = Owner.remote()
    (ref,) = ember.get(owner.make.remote(value), timeout=30)
    assert ember.get(ref, timeout=30) == value           # borrowed while the owner lives
    os.kill(ember.get(owner.pid.remote(), timeout=30), signal.SIGKILL)

    def owner_died() -> bool:
        # Until the node hears of the death, a copy here may still be read (as in
        # Ray); then it is freed with the rest of the dead owner's objects.
        try:
            ember.get(ref, timeout=30)
        except OwnerDiedError:
            return True
        return False

    wait_for_condition(owner_died, timeout=30, retry_interval=0.2,
                       message="get of a dead owner's object kept succeeding")


@ember.remote
def nap(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_what_a_dead_owner_owned_is_cleaned_up(cluster):
    @ember.remote(num_cpus=0)
    class Parent:
        def start(self, name):
            self.child = Journal.options(name=name).remote("/dev/null")
            self.task = nap.remote(120)
            return ember.get(self.child.pid.remote())

        def pid(self):
            return os.getpid()

    parent = Parent.remote()
    child_pid = ember.get(parent.start.remote("orphan-to-be"), timeout=60)
    wait_for_condition(lambda: ember.available_resources().get("CPU", 0) <= 1.0, timeout=30,
                       message="the parent's task never started")
    os.kill(ember.get(parent.pid.remote(), timeout=30), signal.SIGKILL)

    def child_gone() -> bool:
        try:
            ember.get_actor("orphan-to-be")
            return False
        except ValueError:
            return True

    wait_for_condition(child_gone, timeout=30, message="a dead owner's actor lived on")
    wait_for_condition(lambda: not pid_alive(child_pid), timeout=30)
    _all_cpus_free(timeout=30)   # the dead owner's running task was stopped
