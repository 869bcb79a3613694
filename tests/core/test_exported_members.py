"""The public surface is exactly what the docs promise (README's API tour)."""
from __future__ import annotations

import subprocess
import sys

import ember
import ember.exceptions

DOCUMENTED = {
    "ObjectRef", "ObjectRefGenerator", "available_resources", "cancel", "cluster_resources",
    "exceptions", "get", "get_gpu_ids", "get_runtime_context", "init", "is_initialized",
    "nodes", "put", "remote", "shutdown", "wait", "__version__",
    "actor", "get_actor", "kill", "method", "util",
}
UTIL_MODULE = {"ActorPool", "get_current_placement_group", "get_placement_group",
               "list_named_actors", "multiprocessing", "placement_group", "placement_group_table",
               "queue", "remove_placement_group", "scheduling_strategies", "state", "metrics"}
# Ray's ray.util.metrics.
METRICS_MODULE = {"Counter", "Gauge", "Histogram", "Metric"}
# Ray's ray.util.state functions, and the records they return (ray.util.state.common).
STATE_MODULE = {"get_actor", "get_node", "get_objects", "get_placement_group", "get_task",
                "get_worker", "list_actors", "list_jobs", "list_nodes", "list_objects",
                "list_placement_groups", "list_tasks", "list_workers", "summarize_actors",
                "summarize_objects", "summarize_tasks"}
STATE_COMMON_MODULE = {"ActorState", "TaskState", "NodeState", "ObjectState",
                       "PlacementGroupState", "JobState", "WorkerState", "StateSchema"}
EXPERIMENTAL_MODULE = {"get_object_locations"}
ACTOR_MODULE = {"ActorClass", "ActorHandle", "ActorID", "ActorMethod", "exit_actor", "method"}
# Ray's ray.job_submission.
JOB_SUBMISSION_MODULE = {"JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"}


def test_all_matches_docs():
    assert set(ember.__all__) == DOCUMENTED
    for name in ember.__all__:
        assert getattr(ember, name) is not None, name


def test_actor_module_matches_docs():
    import ember.actor
    assert set(ember.actor.__all__) == ACTOR_MODULE
    for name in ember.actor.__all__:
        assert getattr(ember.actor, name) is not None, name
    assert ember.method is ember.actor.method


def test_experimental_module_matches_docs():
    import ember.experimental
    assert set(ember.experimental.__all__) == EXPERIMENTAL_MODULE
    for name in ember.experimental.__all__:
        assert getattr(ember.experimental, name) is not None, name


def test_util_module_matches_docs():
    import ember.util
    assert set(ember.util.__all__) == UTIL_MODULE
    for name in ember.util.__all__:
        assert getattr(ember.util, name) is not None, name
    assert ember.util.queue.Queue and ember.util.multiprocessing.Pool


def test_state_module_matches_docs():
    import ember.util.state
    import ember.util.state.common
    assert set(ember.util.state.__all__) == STATE_MODULE
    assert set(ember.util.state.common.__all__) == STATE_COMMON_MODULE
    for module in (ember.util.state, ember.util.state.common):
        for name in module.__all__:
            assert getattr(module, name).__doc__, name   # each documented
    assert ember.util.state is ember.util.__getattr__("state")


def test_metrics_module_matches_docs():
    import ember.util.metrics
    assert set(ember.util.metrics.__all__) == METRICS_MODULE
    for name in ember.util.metrics.__all__:
        assert getattr(ember.util.metrics, name).__doc__, name
    assert ember.util.metrics is ember.util.__getattr__("metrics")


def test_job_submission_module_matches_docs():
    code = ("import sys, ember.job_submission as js; print(sorted(js.__all__)); "
            "assert 'grpc' not in sys.modules, 'the job client loaded gRPC'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(sorted(JOB_SUBMISSION_MODULE)), out.stderr
    import ember.job_submission
    for name in ember.job_submission.__all__:
        assert getattr(ember.job_submission, name).__doc__, name


def test_exception_names_and_ray_aliases():
    names = {"EmberError", "TaskError", "ActorError", "ActorDiedError", "ActorUnavailableError",
             "WorkerCrashedError", "ObjectLostError", "OwnerDiedError", "GetTimeoutError",
             "TaskCancelledError", "ObjectStoreFullError", "OutOfMemoryError", "NodeDiedError",
             "RuntimeEnvSetupError", "AuthenticationError"}
    assert names <= set(ember.exceptions.__all__)
    assert ember.exceptions.RayTaskError is ember.exceptions.TaskError
    assert ember.exceptions.RayError is ember.exceptions.EmberError


def test_import_is_lazy_and_side_effect_free():
    code = ("import sys, ember; assert 'grpc' not in sys.modules, 'grpc imported eagerly'; "
            "assert not ember.is_initialized(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_py_typed_shipped():
    import pathlib
    assert (pathlib.Path(ember.__file__).parent / "py.typed").exists()
