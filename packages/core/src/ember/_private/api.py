"""The public core API: init/shutdown, get/put/wait/cancel and cluster queries.

Kept thin: argument checking and clear errors here, the work in CoreWorker.
"""
from __future__ import annotations

import atexit
import glob
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Sequence, TypeVar, overload

from . import worker_state
from .runtime_env import JOB_RUNTIME_ENV_ENV as _JOB_RUNTIME_ENV_ENV

if TYPE_CHECKING:
    from .object_ref import ObjectRef, ObjectRefGenerator

T = TypeVar("T")

logger = logging.getLogger("ember")

_state_lock = threading.RLock()
_cluster: Any = None        # node.LocalCluster when this driver started one


def init(address: str | None = None, *, num_cpus: float | None = None,
         num_gpus: float | None = None, resources: dict[str, float] | None = None,
         object_store_memory: int | None = None, namespace: str | None = None,
         runtime_env: dict | None = None, ignore_reinit_error: bool = False,
         log_to_driver: bool = True, logging_level: int = logging.INFO,
         include_dashboard: bool | None = None, dashboard_host: str = "127.0.0.1",
         dashboard_port: int | None = None, **kwargs: Any) -> "ClusterInfo":
    """Start an embedded one-node cluster, or connect to a running one.

    A new cluster starts the dashboard (``include_dashboard``: None when
    ``ember-core[dashboard]`` is installed, True always or an ImportError, False
    never) on ``dashboard_host:dashboard_port`` (None: 8265, or a free port when
    that is taken; 0: any free port); the result's ``dashboard_url`` is where.

    >>> import ember
    >>> ctx = ember.init(num_cpus=2)
    >>> ember.get(ember.put("hi"))
    'hi'
    >>> ctx.dashboard_url
    '127.0.0.1:8265'
    """
    global _cluster
    if kwargs:
        unknown = ", ".join(sorted(kwargs))
        raise ValueError(f"unknown argument(s) to ember.init(): {unknown}")
    with _state_lock:
        if worker_state.core is not None:
            if ignore_reinit_error:
                return ClusterInfo(worker_state.core)
            raise RuntimeError("ember.init() was already called: call ember.shutdown() first, "
                               "or pass ignore_reinit_error=True")
        logging.getLogger("ember").setLevel(logging_level)
        # A job's entrypoint inherits the job's runtime_env (EMBER_JOB_RUNTIME_ENV);
        # one passed here is merged over it, as Ray merges them. Without either,
        # the runtime_env modules (hashlib, zipfile: ~20 ms) are not loaded at all.
        if runtime_env is not None or os.environ.get(_JOB_RUNTIME_ENV_ENV):
            from .options import merge_runtime_env, validate_options
            from .runtime_env.driver import job_env_from_environment
            runtime_env = merge_runtime_env(job_env_from_environment(), runtime_env)
            if runtime_env is not None:
                runtime_env = validate_options({"runtime_env": runtime_env})["runtime_env"]
        address = _resolve_address(address)
        if address is None:
            early: list[Any] = []

            def connect_early(where: dict[str, str]) -> None:
                # The control service is up and the node manager is registering with
                # it: connect meanwhile (nothing here calls the node manager yet).
                while early:            # a start retried on another port
                    early.pop().stop()
                early.append(_connect_to_control(namespace=namespace,
                                                 runtime_env=runtime_env, **where))
            try:
                info = _start_local(num_cpus, num_gpus, resources, object_store_memory,
                                    include_dashboard, dashboard_host, dashboard_port,
                                    on_control_ready=connect_early)
            except BaseException:
                for core in early:
                    core.stop()
                raise
            _cluster = info
            core = _finish_connecting(early[0])
        else:
            if any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory)):
                raise ValueError("num_cpus/num_gpus/resources/object_store_memory describe a new "
                                 "cluster; they cannot be set when connecting to address="
                                 f"{address!r} (set them on `ember start` instead)")
            core = _connect_existing(address, namespace, runtime_env)
        if core.runtime_env:
            try:
                # working_dir/py_modules are packed and uploaded once, here.
                from .runtime_env.driver import upload_job_env
                core.runtime_env = upload_job_env(core.gcs, core.runtime_env)
            except BaseException:
                shutdown()
                raise
        if log_to_driver:
            _start_log_printer(core)
        atexit.register(shutdown)
        return ClusterInfo(core)


class ClusterInfo(dict):
    """What ``init`` returns (Ray's RayContext is dict-like too)."""

    def __init__(self, core: Any) -> None:
        url = _cluster.dashboard_url if _cluster else _dashboard_url(core)
        super().__init__(address=core.gcs_address, node_id=core.node_id,
                         session_dir=_cluster.session_dir if _cluster else None,
                         webui_url=url)
        self.address_info = dict(self)
        self.dashboard_url = url       # Ray's: "host:port", or None without a dashboard

    def __enter__(self) -> "ClusterInfo":
        return self

    def __exit__(self, *exc: Any) -> None:
        shutdown()


def _start_local(num_cpus, num_gpus, resources, object_store_memory,
                 include_dashboard=None, dashboard_host="127.0.0.1", dashboard_port=None,
                 on_control_ready=None):
    # The supervisor starts its interpreter and imports while this process
    # does its own and makes the session (prelaunch.py).
    from . import prelaunch
    early = prelaunch.Prelaunched.start() if prelaunch.enabled() else None
    try:
        from . import node
        from .resources import build_node_resources
        total, gpu_ids, _ = build_node_resources(num_cpus, num_gpus, resources, None,
                                                 object_store_memory)
        prestart = max(0, min(int(total.get("CPU", 0)), 4))
        return node.start_local_cluster(total=total, gpu_ids=gpu_ids, prestart=prestart,
                                        include_dashboard=include_dashboard,
                                        dashboard_host=dashboard_host,
                                        dashboard_port=dashboard_port,
                                        while_starting=_import_driver_modules,
                                        prelaunched=early,
                                        when_control_ready=on_control_ready)
    except BaseException:
        if early is not None:
            early.abort()
        raise


def _import_driver_modules() -> None:
    """What connecting, the log printer and a first task need, imported while the
    cluster's processes start: the driver would otherwise do this ~80 ms of work
    (about half of it inside CoreWorker's constructor) after they are ready."""
    import encodings.idna  # noqa: F401 - the first connection to a host name
    import grpc._channel  # noqa: F401
    import grpc._server  # noqa: F401
    from . import (actor_directory, actor_submitter, core_worker, gcs_client,  # noqa: F401
                   log_printer, metrics_registry, object_recovery, placement_group,
                   remote_function, rpc_chaos, store_client, task_state_counts,
                   task_submitter)
    from .. import _remote  # noqa: F401 - what @ember.remote loads
    from .protos import ember_pb2  # noqa: F401
    from .transports import framed, grpc_stream  # noqa: F401


def _dashboard_url(core: Any) -> str | None:
    """The dashboard's ``host:port`` a running cluster recorded (None: it has none)."""
    from .dashboard.launch import KV_KEY
    from .node import CLUSTER_KV_NS
    from .protos import ember_pb2 as pb
    try:
        reply = core.gcs.KVGet(pb.KVRequest(ns=CLUSTER_KV_NS, key=KV_KEY.encode()), timeout=10)
    except Exception:  # noqa: BLE001 - an old control service: no dashboard to show
        return None
    return reply.value.decode() if reply.found else None


def _connect_driver(token, gcs_address, nm_address, node_id, shm_dir, shm_prefix,
                    namespace, runtime_env, bind_ip="127.0.0.1"):
    return _finish_connecting(_connect_to_control(
        token=token, gcs_address=gcs_address, node_manager_address=nm_address,
        node_id=node_id, shm_dir=shm_dir, shm_prefix=shm_prefix, namespace=namespace,
        runtime_env=runtime_env, bind_ip=bind_ip))


def _connect_to_control(*, token: str, gcs_address: str, node_manager_address: str,
                        node_id: str, shm_dir: str, shm_prefix: str, namespace: str | None,
                        runtime_env: Any, bind_ip: str = "127.0.0.1") -> Any:
    """The driver's core worker, started and known to the control service: everything
    of connecting that does not call the node manager (which may still be starting;
    a call to a port not yet open would hold its channel in a reconnect backoff)."""
    from . import core_worker
    from .protos import ember_pb2 as pb
    core = core_worker.CoreWorker(
        is_driver=True, token=token, node_id=node_id, gcs_address=gcs_address,
        node_manager_address=node_manager_address, shm_dir=shm_dir, shm_prefix=shm_prefix,
        job_id=0, namespace=namespace or "", runtime_env=runtime_env, bind_ip=bind_ip)
    try:
        core.start()
        core.job_id = core.gcs.NextJobId(pb.Empty(), timeout=30).job_id
        _watch_driver(core)
        _record_job_driver(core)
    except BaseException:
        core.stop()
        raise
    if not namespace:
        core.namespace = f"anonymous-{core.job_id}"
    return core


def _finish_connecting(core: Any) -> Any:
    """The rest, once the node manager is ready too: install it as this process's."""
    from . import core_worker, metrics_registry
    core_worker.install(core)
    metrics_registry.start_reporting(core)
    return core


def _record_job_driver(core: Any) -> None:
    """In a submitted job's entrypoint (EMBER_JOB_SUBMISSION_ID, set by job_supervisor.py):
    the first driver's job id becomes the job's ``job_id``, as in Ray."""
    sid = os.environ.get("EMBER_JOB_SUBMISSION_ID")
    if not sid:
        return
    from .job_state import DRIVERS_NS
    from .protos import ember_pb2 as pb
    try:
        core.gcs.KVPut(pb.KVRequest(ns=DRIVERS_NS, key=sid.encode(),
                                    value=f"{core.job_id:08x}".encode(), overwrite=False),
                       timeout=30)
    except Exception:  # noqa: BLE001 - only the job's listing would miss it
        logging.getLogger("ember").debug("could not record job %s's driver", sid,
                                         exc_info=True)


def _watch_driver(core: Any) -> None:
    """Hold a stream open to the control service: when this driver goes away (exit,
    crash or shutdown) the stream ends and its non-detached actors are stopped."""
    from .gcs_client import DriverWatch
    from .protos import ember_pb2 as pb
    # Re-opened on a restarted control service, which waits for it (gcs_client.py).
    core._driver_watch = DriverWatch(
        core.gcs, pb.DriverInfo(worker_id=core.worker_id, job_id=core.job_id,
                                address=core.address, node_id=core.node_id, pid=os.getpid(),
                                entrypoint=" ".join(sys.argv),
                                namespace=core.namespace or f"anonymous-{core.job_id}"))


def _resolve_address(address: str | None) -> str | None:
    """``address`` (or $EMBER_ADDRESS) as HOST:PORT; None means start an embedded cluster.

    "auto" is the newest cluster started on this machine by ``ember start``;
    "local" (as in Ray) always starts a new embedded cluster.
    """
    address = (address or os.environ.get("EMBER_ADDRESS") or "").strip() or None
    if address is None or address == "local":
        return None
    if address == "auto":
        from .node import find_latest_cluster
        found = find_latest_cluster()
        if found is None:
            raise ConnectionError(
                'address="auto" found no running Ember cluster started on this machine: '
                "start one with `ember start --head`, or pass address=\"HOST:PORT\" of a "
                "running cluster (or leave address out to start an embedded one)")
        return found
    return address


def _find_token(address: str) -> str | None:
    """The cluster token for ``address``: $EMBER_CLUSTER_TOKEN, else the session directory
    on this machine whose ``gcs_address`` is ``address`` (newest first)."""
    from .node import find_local_token
    from .rpc import TOKEN_ENV
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token.strip()
    return find_local_token(address)


def _pick_local_node(nodes: list, head_node_id: str | None) -> Any:
    """The node this driver attaches to: a live node on this machine (the head first,
    then the oldest), else the head, else any live node."""
    from .node import is_local_ip
    live = [n for n in nodes if n.alive]
    if not live:
        return None
    local = [n for n in live if is_local_ip(n.ip)]
    head = [n for n in live if n.node_id == head_node_id]
    for group in ([n for n in local if n.node_id == head_node_id], local, head):
        if group:
            return min(group, key=lambda n: n.start_time)
    return min(live, key=lambda n: n.start_time)


def _connect_existing(address: str, namespace, runtime_env):
    from . import node as node_mod
    from . import rpc
    try:
        node_mod.split_address(address)
    except ValueError:
        raise ValueError(f"address {address!r} must look like HOST:PORT (e.g. "
                         f"\"127.0.0.1:6379\"), or be \"auto\" for the cluster started on "
                         "this machine by `ember start`") from None
    token = _find_token(address)
    if token is None:
        # Nothing listening is the likelier mistake: say so first.
        node_mod.check_reachable(address, 5.0)
        chan = rpc.channel(address)
        try:
            rpc.wait_ready(chan, 5.0, f"an Ember cluster at {address}")
        finally:
            chan.close()
        raise ConnectionError(
            f"found a server at {address} but not its cluster token: this machine has no "
            f"session for it, so set {rpc.TOKEN_ENV} to the token printed by "
            "`ember start --head` (the file `token` in the head's session directory)")
    # ConnectionError ("could not reach ...", "rejected the cluster token ...") on failure.
    nodes = node_mod.query_nodes(address, token, timeout=5.0)
    head_id = node_mod.cluster_kv(address, token, "head_node_id")
    node = _pick_local_node(nodes, head_id)
    if node is None:
        raise ConnectionError(f"the cluster at {address} has no live nodes")
    if not node_mod.is_local_ip(node.ip):
        # A driver shares its node's shared memory (large put() values are written
        # there directly), so it needs a node on its own machine, as in Ray.
        raise ConnectionError(
            f"no node of the cluster at {address} runs on this machine, and a driver needs "
            f"one: run `ember start --address={address}` here first (with --token=... or "
            f"{rpc.TOKEN_ENV} set), then connect again")
    return _connect_driver(token, address, f"{node.ip}:{node.port}", node.node_id,
                           node.shm_dir, node.shm_prefix, namespace, runtime_env,
                           bind_ip=node.ip)


def _start_log_printer(core: Any) -> None:
    """Print worker output here, prefixed and folded (log_printer.py)."""
    from .log_printer import LogPrinter
    printer = LogPrinter(core)
    printer.start()
    core._log_printer = printer


def shutdown() -> None:
    """Disconnect; if this driver started the cluster, stop it and free its memory.

    >>> ember.shutdown()
    """
    global _cluster
    with _state_lock:
        core = worker_state.core
        if core is not None:
            printer = getattr(core, "_log_printer", None)
            if printer is not None:
                printer.stop()
            from . import metrics_registry
            metrics_registry.process_leaving()
            watch = getattr(core, "_driver_watch", None)
            if watch is not None:
                watch.cancel()
            pg_ops = getattr(core, "_pg_ops", None)
            if pg_ops is not None:
                pg_ops.close()      # queued removals and creates reach the cluster
            from . import core_worker
            core_worker.uninstall()
            core.stop()
        if _cluster is not None:
            _cluster.stop()
            _cluster = None


def is_initialized() -> bool:
    """True when this process is connected to a cluster."""
    return worker_state.core is not None


def _check_refs(refs: Any, what: str) -> None:
    from .object_ref import ObjectRef
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"{what} expects ObjectRefs (or a list of them), got "
                            f"{type(r).__name__}: pass the refs returned by .remote() or put()")


# One ref gives its value's type, a list (or tuple) of refs a list of them; the
# last overload takes lists mixing value types (ObjectRef is invariant).
@overload
def get(object_refs: ObjectRef[T], *, timeout: float | None = None) -> T: ...


@overload
def get(object_refs: Sequence[ObjectRef[T]], *, timeout: float | None = None) -> list[T]: ...


@overload
def get(object_refs: Sequence[ObjectRef[Any]], *,
        timeout: float | None = None) -> list[Any]: ...


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """Wait for and return the value(s) of one ref or a list of refs.

    >>> ember.get([square.remote(i) for i in range(3)])
    [0, 1, 4]
    """
    from .object_ref import ObjectRef, ObjectRefGenerator
    core = worker_state.require_core()
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    if isinstance(object_refs, ObjectRef):
        return core.get([object_refs], timeout)[0]
    if isinstance(object_refs, ObjectRefGenerator):
        raise TypeError("ember.get() of an ObjectRefGenerator: iterate it and get each ref, "
                        "e.g. [ember.get(r) for r in gen]")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"ember.get() expects an ObjectRef or a list of ObjectRefs, got "
                        f"{type(object_refs).__name__}")
    refs = list(object_refs)
    _check_refs(refs, "ember.get()")
    return core.get(refs, timeout)


def put(value: T, *, _owner: Any = None) -> ObjectRef[T]:
    """Store a value in the object store and return a ref to it.

    >>> ref = ember.put(np.zeros(10**6))
    """
    return worker_state.require_core().put(value)


@overload
def wait(object_refs: Sequence[ObjectRef[Any]], *, num_returns: int = 1,
         timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef[Any]], list[ObjectRef[Any]]]: ...


@overload
def wait(object_refs: Sequence[ObjectRef[Any] | ObjectRefGenerator], *, num_returns: int = 1,
         timeout: float | None = None, fetch_local: bool = True
         ) -> tuple[list[ObjectRef[Any] | ObjectRefGenerator],
                    list[ObjectRef[Any] | ObjectRefGenerator]]: ...


def wait(object_refs: Any, *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> Any:
    """Return (ready, not_ready) once ``num_returns`` refs are ready or time runs out.

    Streaming generators may be mixed in: one is ready when its next item is.

    >>> ready, pending = ember.wait(refs, num_returns=2, timeout=1.0)
    """
    from .object_ref import ObjectRefGenerator
    core = worker_state.require_core()
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"ember.wait() expects a list of ObjectRefs, got "
                        f"{type(object_refs).__name__}")
    refs = list(object_refs)
    _check_refs([r for r in refs if not isinstance(r, ObjectRefGenerator)], "ember.wait()")
    if len(set(refs)) != len(refs):
        raise ValueError("ember.wait() got the same ObjectRef more than once: deduplicate the list")
    if not isinstance(num_returns, int) or num_returns < 1 and refs:
        raise ValueError(f"num_returns must be a positive int, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(f"num_returns ({num_returns}) is larger than the number of refs "
                         f"({len(refs)})")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    if not refs:
        return [], []
    if any(isinstance(r, ObjectRefGenerator) for r in refs):
        return _wait_with_generators(core, refs, num_returns, timeout, fetch_local)
    return core.wait(refs, num_returns, timeout, fetch_local)


def _wait_with_generators(core: Any, refs: list, num_returns: int, timeout: float | None,
                          fetch_local: bool) -> tuple[list, list]:
    """wait() over refs and streaming generators: a generator is ready when its
    next item is (or it has ended), as in Ray."""
    import time

    from .object_ref import ObjectRefGenerator
    deadline = None if timeout is None else time.monotonic() + timeout
    plain = [r for r in refs if not isinstance(r, ObjectRefGenerator)]
    while True:
        done_plain = set(core.wait(plain, len(plain), 0, fetch_local)[0]) if plain else set()
        ready = [r for r in refs if (r.ready() if isinstance(r, ObjectRefGenerator)
                                     else r in done_plain)]
        if len(ready) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            ready = ready[:num_returns]
            chosen = {id(r) for r in ready}
            return ready, [r for r in refs if id(r) not in chosen]
        # Woken at once by generator progress; plain refs are re-checked every 10 ms.
        step = 0.01 if deadline is None else max(0.0, min(0.01, deadline - time.monotonic()))
        core.submitter.wait_generator_progress(step)


def cancel(object_ref: Any, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``object_ref``; its ``get`` raises TaskCancelledError.

    >>> ember.cancel(ref)
    """
    from .object_ref import ObjectRef, ObjectRefGenerator
    core = worker_state.require_core()
    if isinstance(object_ref, ObjectRefGenerator):
        from .ids import object_id_for
        core.submitter.cancel(object_id_for(object_ref._task_id, 1), force, recursive)
        return
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"ember.cancel() expects an ObjectRef, got {type(object_ref).__name__}")
    core.submitter.cancel(object_ref._id, force, recursive)


def get_actor(name: str, namespace: str | None = None) -> Any:
    """A handle to the named actor (in this job's namespace unless one is given).

    >>> Counter.options(name="counter").remote()
    >>> c = ember.get_actor("counter")
    """
    import pickle

    from .actor_class import ActorHandle
    from .actor_directory import DEAD
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    if not isinstance(name, str) or not name:
        raise ValueError(f"ember.get_actor() needs a non-empty actor name, got {name!r}")
    ns = core.namespace if namespace is None else namespace
    info = core.gcs.GetActor(pb.GetActorRequest(name=name, namespace=ns), timeout=30)
    if not info.found or info.state == DEAD:
        raise ValueError(f"Failed to look up actor with name {name!r} in namespace {ns!r}: "
                         "no live actor has that name there. Check the name and namespace "
                         "(ember.get_actor(name, namespace=...)), and that the actor was "
                         "created with .options(name=...) and is still alive")
    return ActorHandle(info.actor_id, pickle.loads(info.handle_meta), None)


def list_named_actors(all_namespaces: bool = False) -> list:
    """Names of live named actors: in this namespace, or everywhere as dicts.

    >>> ember.util.list_named_actors()
    ['counter']
    >>> ember.util.list_named_actors(all_namespaces=True)
    [{'name': 'counter', 'namespace': 'anonymous-1'}]
    """
    from .actor_directory import DEAD
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    actors = [a for a in core.gcs.ListActors(pb.Empty(), timeout=30).actors
              if a.name and a.state != DEAD]
    if all_namespaces:
        return [{"name": a.name, "namespace": a.namespace} for a in actors]
    return [a.name for a in actors if a.namespace == core.namespace]


def kill(actor: Any, *, no_restart: bool = True) -> None:
    """Stop an actor now: its calls fail with ActorDiedError and its resources are freed.

    With ``no_restart=False`` an actor with restarts left is restarted instead.

    >>> ember.kill(counter)
    """
    from .actor_class import ActorHandle
    core = worker_state.require_core()
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"ember.kill() expects an actor handle, got {type(actor).__name__}; "
                        "to stop a task use ember.cancel(ref)")
    core.actors.kill(actor._ember_actor_id, no_restart)


def nodes() -> list[dict]:
    """Describe every node: id, address, liveness and resources (Ray's format).

    >>> [n["NodeID"] for n in ember.nodes()]
    """
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    out = []
    for n in core.gcs.GetNodes(pb.Empty(), timeout=10).nodes:
        out.append({"NodeID": n.node_id, "Alive": n.alive, "NodeManagerAddress": n.ip,
                    "NodeManagerPort": n.port, "MetricsExportPort": n.metrics_export_port,
                    "Resources": dict(n.total),
                    "Labels": dict(n.labels), "alive": n.alive})
    return out


def _sum(field: str) -> dict[str, float]:
    from .protos import ember_pb2 as pb
    core = worker_state.require_core()
    total: dict[str, float] = {}
    for n in core.gcs.GetNodes(pb.Empty(), timeout=10).nodes:
        if not n.alive:
            continue
        for k, v in getattr(n, field).items():
            total[k] = total.get(k, 0.0) + v
    return total


def cluster_resources() -> dict[str, float]:
    """Total resources of all live nodes. >>> ember.cluster_resources()["CPU"]"""
    return _sum("total")


def available_resources() -> dict[str, float]:
    """Resources not currently held by tasks. >>> ember.available_resources().get("CPU")"""
    return _sum("available")


def get_gpu_ids() -> list[int]:
    """GPU ids assigned to the current task (empty in the driver or a CPU task).

    >>> ember.get_gpu_ids()
    [0]
    """
    core = worker_state.require_core()
    running = getattr(core.current, "task", None)
    if running is None:
        return []
    return [int(g) for g in running.spec.gpu_ids if g.isdigit()]
