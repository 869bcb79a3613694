from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActorState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING: _ClassVar[ActorState]
    ALIVE: _ClassVar[ActorState]
    RESTARTING: _ClassVar[ActorState]
    DEAD: _ClassVar[ActorState]
PENDING: ActorState
ALIVE: ActorState
RESTARTING: ActorState
DEAD: ActorState

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Address(_message.Message):
    __slots__ = ("node_id", "ip", "port", "worker_id", "push_port")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PUSH_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    ip: str
    port: int
    worker_id: str
    push_port: int
    def __init__(self, node_id: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., worker_id: _Optional[str] = ..., push_port: _Optional[int] = ...) -> None: ...

class ObjectRefProto(_message.Message):
    __slots__ = ("object_id", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    owner: Address
    def __init__(self, object_id: _Optional[bytes] = ..., owner: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "ip", "port", "total", "available", "alive", "shm_dir", "shm_prefix", "labels", "start_time", "metrics_export_port")
    class TotalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class AvailableEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SHM_DIR_FIELD_NUMBER: _ClassVar[int]
    SHM_PREFIX_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    METRICS_EXPORT_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    ip: str
    port: int
    total: _containers.ScalarMap[str, float]
    available: _containers.ScalarMap[str, float]
    alive: bool
    shm_dir: str
    shm_prefix: str
    labels: _containers.ScalarMap[str, str]
    start_time: float
    metrics_export_port: int
    def __init__(self, node_id: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., total: _Optional[_Mapping[str, float]] = ..., available: _Optional[_Mapping[str, float]] = ..., alive: _Optional[bool] = ..., shm_dir: _Optional[str] = ..., shm_prefix: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., start_time: _Optional[float] = ..., metrics_export_port: _Optional[int] = ...) -> None: ...

class NodeList(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class KVRequest(_message.Message):
    __slots__ = ("ns", "key", "value", "overwrite")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: bytes
    value: bytes
    overwrite: bool
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class KVReply(_message.Message):
    __slots__ = ("found", "value", "added", "keys")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    added: bool
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., added: _Optional[bool] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class JobReply(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    def __init__(self, job_id: _Optional[int] = ...) -> None: ...

class ActorSpec(_message.Message):
    __slots__ = ("actor_id", "class_name", "name", "namespace", "detached", "owner", "max_restarts", "resources", "placement_resources", "creation", "max_concurrency", "concurrency_groups", "is_async", "runtime_env_hash", "get_if_exists", "handle_meta", "hints", "runtime_env")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PlacementResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ConcurrencyGroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    CREATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    GET_IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_META_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    class_name: str
    name: str
    namespace: str
    detached: bool
    owner: Address
    max_restarts: int
    resources: _containers.ScalarMap[str, float]
    placement_resources: _containers.ScalarMap[str, float]
    creation: TaskSpec
    max_concurrency: int
    concurrency_groups: _containers.ScalarMap[str, int]
    is_async: bool
    runtime_env_hash: str
    get_if_exists: bool
    handle_meta: bytes
    hints: SchedulingHints
    runtime_env: bytes
    def __init__(self, actor_id: _Optional[bytes] = ..., class_name: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., detached: _Optional[bool] = ..., owner: _Optional[_Union[Address, _Mapping]] = ..., max_restarts: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., placement_resources: _Optional[_Mapping[str, float]] = ..., creation: _Optional[_Union[TaskSpec, _Mapping]] = ..., max_concurrency: _Optional[int] = ..., concurrency_groups: _Optional[_Mapping[str, int]] = ..., is_async: _Optional[bool] = ..., runtime_env_hash: _Optional[str] = ..., get_if_exists: _Optional[bool] = ..., handle_meta: _Optional[bytes] = ..., hints: _Optional[_Union[SchedulingHints, _Mapping]] = ..., runtime_env: _Optional[bytes] = ...) -> None: ...

class ActorInfo(_message.Message):
    __slots__ = ("actor_id", "state", "address", "name", "namespace", "death_cause", "creation_error", "num_restarts", "handle_meta", "version", "class_name", "detached", "owner_worker_id", "node_id", "pid", "resources", "found", "job_id", "placement_group_id")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    CREATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    NUM_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_META_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    state: ActorState
    address: Address
    name: str
    namespace: str
    death_cause: str
    creation_error: bytes
    num_restarts: int
    handle_meta: bytes
    version: int
    class_name: str
    detached: bool
    owner_worker_id: str
    node_id: str
    pid: int
    resources: _containers.ScalarMap[str, float]
    found: bool
    job_id: int
    placement_group_id: bytes
    def __init__(self, actor_id: _Optional[bytes] = ..., state: _Optional[_Union[ActorState, str]] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., death_cause: _Optional[str] = ..., creation_error: _Optional[bytes] = ..., num_restarts: _Optional[int] = ..., handle_meta: _Optional[bytes] = ..., version: _Optional[int] = ..., class_name: _Optional[str] = ..., detached: _Optional[bool] = ..., owner_worker_id: _Optional[str] = ..., node_id: _Optional[str] = ..., pid: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., found: _Optional[bool] = ..., job_id: _Optional[int] = ..., placement_group_id: _Optional[bytes] = ...) -> None: ...

class CreateActorReply(_message.Message):
    __slots__ = ("created", "info", "error")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    created: bool
    info: ActorInfo
    error: str
    def __init__(self, created: _Optional[bool] = ..., info: _Optional[_Union[ActorInfo, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class GetActorRequest(_message.Message):
    __slots__ = ("actor_id", "name", "namespace", "after_version", "timeout")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    name: str
    namespace: str
    after_version: int
    timeout: float
    def __init__(self, actor_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., after_version: _Optional[int] = ..., timeout: _Optional[float] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("actor_id", "no_restart", "reason")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NO_RESTART_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    no_restart: bool
    reason: str
    def __init__(self, actor_id: _Optional[bytes] = ..., no_restart: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class WorkerDeath(_message.Message):
    __slots__ = ("worker_id", "node_id", "reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    node_id: str
    reason: str
    def __init__(self, worker_id: _Optional[str] = ..., node_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ActorList(_message.Message):
    __slots__ = ("actors",)
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorInfo]
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorInfo, _Mapping]]] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ("index", "resources", "node_id", "label_selector")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    index: int
    resources: _containers.ScalarMap[str, float]
    node_id: str
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, index: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., node_id: _Optional[str] = ..., label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PlacementGroupSpec(_message.Message):
    __slots__ = ("pg_id", "name", "namespace", "strategy", "bundles", "detached", "owner_worker_id", "soft_target_node_id", "owner_node_id")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SOFT_TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    name: str
    namespace: str
    strategy: str
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    detached: bool
    owner_worker_id: str
    soft_target_node_id: str
    owner_node_id: str
    def __init__(self, pg_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., strategy: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ..., detached: _Optional[bool] = ..., owner_worker_id: _Optional[str] = ..., soft_target_node_id: _Optional[str] = ..., owner_node_id: _Optional[str] = ...) -> None: ...

class PlacementGroupInfo(_message.Message):
    __slots__ = ("pg_id", "name", "namespace", "strategy", "state", "bundles", "version", "found", "error", "detached")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    name: str
    namespace: str
    strategy: str
    state: str
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    version: int
    found: bool
    error: str
    detached: bool
    def __init__(self, pg_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., strategy: _Optional[str] = ..., state: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ..., version: _Optional[int] = ..., found: _Optional[bool] = ..., error: _Optional[str] = ..., detached: _Optional[bool] = ...) -> None: ...

class PlacementGroupRequest(_message.Message):
    __slots__ = ("pg_id", "name", "namespace", "after_version", "timeout")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    name: str
    namespace: str
    after_version: int
    timeout: float
    def __init__(self, pg_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., after_version: _Optional[int] = ..., timeout: _Optional[float] = ...) -> None: ...

class PlacementGroupList(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupInfo]
    def __init__(self, groups: _Optional[_Iterable[_Union[PlacementGroupInfo, _Mapping]]] = ...) -> None: ...

class PlacementGroupOp(_message.Message):
    __slots__ = ("create", "remove")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    create: PlacementGroupSpec
    remove: bytes
    def __init__(self, create: _Optional[_Union[PlacementGroupSpec, _Mapping]] = ..., remove: _Optional[bytes] = ...) -> None: ...

class PlacementGroupOps(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[PlacementGroupOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[PlacementGroupOp, _Mapping]]] = ...) -> None: ...

class PlacementGroupOpResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PlacementGroupInfo]
    def __init__(self, results: _Optional[_Iterable[_Union[PlacementGroupInfo, _Mapping]]] = ...) -> None: ...

class BundleRequest(_message.Message):
    __slots__ = ("pg_id", "bundles", "commit", "batch")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    commit: bool
    batch: _containers.RepeatedCompositeFieldContainer[BundleRequest]
    def __init__(self, pg_id: _Optional[bytes] = ..., bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ..., commit: _Optional[bool] = ..., batch: _Optional[_Iterable[_Union[BundleRequest, _Mapping]]] = ...) -> None: ...

class BundleReply(_message.Message):
    __slots__ = ("ok", "error", "node", "batch")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    node: NodeInfo
    batch: _containers.RepeatedCompositeFieldContainer[BundleReply]
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., node: _Optional[_Union[NodeInfo, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[BundleReply, _Mapping]]] = ...) -> None: ...

class DriverInfo(_message.Message):
    __slots__ = ("worker_id", "job_id", "address", "node_id", "pid", "entrypoint", "namespace")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    job_id: int
    address: str
    node_id: str
    pid: int
    entrypoint: str
    namespace: str
    def __init__(self, worker_id: _Optional[str] = ..., job_id: _Optional[int] = ..., address: _Optional[str] = ..., node_id: _Optional[str] = ..., pid: _Optional[int] = ..., entrypoint: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class SchedulingHints(_message.Message):
    __slots__ = ("strategy", "affinity_node_id", "affinity_soft", "label_selector")
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_SOFT_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    affinity_node_id: str
    affinity_soft: bool
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, strategy: _Optional[str] = ..., affinity_node_id: _Optional[str] = ..., affinity_soft: _Optional[bool] = ..., label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("resources", "owner_worker_id", "runtime_env", "runtime_env_hash", "name", "placement_resources", "for_actor", "hints", "spilled", "owner_node_id", "request_id", "no_retries")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PlacementResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    FOR_ACTOR_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    OWNER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NO_RETRIES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.ScalarMap[str, float]
    owner_worker_id: str
    runtime_env: bytes
    runtime_env_hash: str
    name: str
    placement_resources: _containers.ScalarMap[str, float]
    for_actor: bool
    hints: SchedulingHints
    spilled: bool
    owner_node_id: str
    request_id: str
    no_retries: bool
    def __init__(self, resources: _Optional[_Mapping[str, float]] = ..., owner_worker_id: _Optional[str] = ..., runtime_env: _Optional[bytes] = ..., runtime_env_hash: _Optional[str] = ..., name: _Optional[str] = ..., placement_resources: _Optional[_Mapping[str, float]] = ..., for_actor: _Optional[bool] = ..., hints: _Optional[_Union[SchedulingHints, _Mapping]] = ..., spilled: _Optional[bool] = ..., owner_node_id: _Optional[str] = ..., request_id: _Optional[str] = ..., no_retries: _Optional[bool] = ...) -> None: ...

class WorkerFailureRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class WorkerFailureReply(_message.Message):
    __slots__ = ("oom", "message")
    OOM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    oom: bool
    message: str
    def __init__(self, oom: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class LeaseReply(_message.Message):
    __slots__ = ("granted", "lease_id", "worker", "gpu_ids", "resources", "error", "spillback", "fatal", "runtime_env_failed")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SPILLBACK_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FAILED_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    lease_id: bytes
    worker: Address
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    resources: _containers.ScalarMap[str, float]
    error: str
    spillback: Address
    fatal: bool
    runtime_env_failed: bool
    def __init__(self, granted: _Optional[bool] = ..., lease_id: _Optional[bytes] = ..., worker: _Optional[_Union[Address, _Mapping]] = ..., gpu_ids: _Optional[_Iterable[str]] = ..., resources: _Optional[_Mapping[str, float]] = ..., error: _Optional[str] = ..., spillback: _Optional[_Union[Address, _Mapping]] = ..., fatal: _Optional[bool] = ..., runtime_env_failed: _Optional[bool] = ...) -> None: ...

class ReturnLease(_message.Message):
    __slots__ = ("lease_id", "kill_worker")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    KILL_WORKER_FIELD_NUMBER: _ClassVar[int]
    lease_id: bytes
    kill_worker: bool
    def __init__(self, lease_id: _Optional[bytes] = ..., kill_worker: _Optional[bool] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "pid", "port", "runtime_env_hash", "push_port")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    PUSH_PORT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    pid: int
    port: int
    runtime_env_hash: str
    push_port: int
    def __init__(self, worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., port: _Optional[int] = ..., runtime_env_hash: _Optional[str] = ..., push_port: _Optional[int] = ...) -> None: ...

class RegisterWorkerReply(_message.Message):
    __slots__ = ("node_id", "shm_dir", "shm_prefix", "gcs_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SHM_DIR_FIELD_NUMBER: _ClassVar[int]
    SHM_PREFIX_FIELD_NUMBER: _ClassVar[int]
    GCS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    shm_dir: str
    shm_prefix: str
    gcs_address: str
    def __init__(self, node_id: _Optional[str] = ..., shm_dir: _Optional[str] = ..., shm_prefix: _Optional[str] = ..., gcs_address: _Optional[str] = ...) -> None: ...

class BlockedRequest(_message.Message):
    __slots__ = ("worker_id", "blocked")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    blocked: bool
    def __init__(self, worker_id: _Optional[str] = ..., blocked: _Optional[bool] = ...) -> None: ...

class SealedObject(_message.Message):
    __slots__ = ("object_id", "size", "owner_worker_id", "owner_node_id")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner_worker_id: str
    owner_node_id: str
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner_worker_id: _Optional[str] = ..., owner_node_id: _Optional[str] = ...) -> None: ...

class ObjectsRequest(_message.Message):
    __slots__ = ("objects", "worker_id")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[SealedObject]
    worker_id: str
    def __init__(self, objects: _Optional[_Iterable[_Union[SealedObject, _Mapping]]] = ..., worker_id: _Optional[str] = ...) -> None: ...

class CreateObjectRequest(_message.Message):
    __slots__ = ("object_id", "size", "worker_id")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    worker_id: str
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class CreateObjectReply(_message.Message):
    __slots__ = ("ok", "error", "credit")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    credit: int
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., credit: _Optional[int] = ...) -> None: ...

class KillWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "force")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    force: bool
    def __init__(self, worker_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("pid", "task_name", "line", "is_err")
    PID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    IS_ERR_FIELD_NUMBER: _ClassVar[int]
    pid: int
    task_name: str
    line: str
    is_err: bool
    def __init__(self, pid: _Optional[int] = ..., task_name: _Optional[str] = ..., line: _Optional[str] = ..., is_err: _Optional[bool] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("object_id", "locations", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    locations: _containers.RepeatedCompositeFieldContainer[Address]
    owner: Address
    def __init__(self, object_id: _Optional[bytes] = ..., locations: _Optional[_Iterable[_Union[Address, _Mapping]]] = ..., owner: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class PullReply(_message.Message):
    __slots__ = ("ok", "error", "size", "copied", "store_full")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    STORE_FULL_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    size: int
    copied: bool
    store_full: bool
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., size: _Optional[int] = ..., copied: _Optional[bool] = ..., store_full: _Optional[bool] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("object_id", "offset", "length")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    offset: int
    length: int
    def __init__(self, object_id: _Optional[bytes] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("offset", "data", "total_size", "range_port")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    RANGE_PORT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    total_size: int
    range_port: int
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., total_size: _Optional[int] = ..., range_port: _Optional[int] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "pid", "port", "start_time")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    pid: int
    port: int
    start_time: float
    def __init__(self, worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., port: _Optional[int] = ..., start_time: _Optional[float] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node", "num_workers", "num_idle_workers", "pending_leases", "infeasible", "store_used_bytes", "store_num_objects", "workers", "store_capacity_bytes", "store_spilled_bytes", "store_num_spilled", "store_total_spilled_bytes", "store_total_restored_bytes")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_IDLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_LEASES_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    STORE_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORE_NUM_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    STORE_CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORE_SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORE_NUM_SPILLED_FIELD_NUMBER: _ClassVar[int]
    STORE_TOTAL_SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORE_TOTAL_RESTORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    num_workers: int
    num_idle_workers: int
    pending_leases: int
    infeasible: _containers.RepeatedScalarFieldContainer[str]
    store_used_bytes: int
    store_num_objects: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    store_capacity_bytes: int
    store_spilled_bytes: int
    store_num_spilled: int
    store_total_spilled_bytes: int
    store_total_restored_bytes: int
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., num_workers: _Optional[int] = ..., num_idle_workers: _Optional[int] = ..., pending_leases: _Optional[int] = ..., infeasible: _Optional[_Iterable[str]] = ..., store_used_bytes: _Optional[int] = ..., store_num_objects: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., store_capacity_bytes: _Optional[int] = ..., store_spilled_bytes: _Optional[int] = ..., store_num_spilled: _Optional[int] = ..., store_total_spilled_bytes: _Optional[int] = ..., store_total_restored_bytes: _Optional[int] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("name", "kind", "description", "tag_keys", "tag_values", "value", "updated", "boundaries", "bucket_counts", "sum")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAG_KEYS_FIELD_NUMBER: _ClassVar[int]
    TAG_VALUES_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    BOUNDARIES_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: int
    description: str
    tag_keys: _containers.RepeatedScalarFieldContainer[str]
    tag_values: _containers.RepeatedScalarFieldContainer[str]
    value: float
    updated: float
    boundaries: _containers.RepeatedScalarFieldContainer[float]
    bucket_counts: _containers.RepeatedScalarFieldContainer[float]
    sum: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[int] = ..., description: _Optional[str] = ..., tag_keys: _Optional[_Iterable[str]] = ..., tag_values: _Optional[_Iterable[str]] = ..., value: _Optional[float] = ..., updated: _Optional[float] = ..., boundaries: _Optional[_Iterable[float]] = ..., bucket_counts: _Optional[_Iterable[float]] = ..., sum: _Optional[float] = ...) -> None: ...

class MetricsReport(_message.Message):
    __slots__ = ("process_id", "pid", "points", "task_states", "final")
    class TaskStatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TASK_STATES_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    process_id: str
    pid: int
    points: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    task_states: _containers.ScalarMap[str, float]
    final: bool
    def __init__(self, process_id: _Optional[str] = ..., pid: _Optional[int] = ..., points: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ..., task_states: _Optional[_Mapping[str, float]] = ..., final: _Optional[bool] = ...) -> None: ...

class Arg(_message.Message):
    __slots__ = ("data", "shm_object_id", "is_shm", "locations", "owner_address")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IS_SHM_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    OWNER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    shm_object_id: bytes
    is_shm: bool
    locations: _containers.RepeatedCompositeFieldContainer[Address]
    owner_address: str
    def __init__(self, data: _Optional[bytes] = ..., shm_object_id: _Optional[bytes] = ..., is_shm: _Optional[bool] = ..., locations: _Optional[_Iterable[_Union[Address, _Mapping]]] = ..., owner_address: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "job_id", "function_id", "name", "args", "kwarg_names", "num_returns", "owner", "max_calls", "env_vars", "gpu_ids", "resources", "generator_backpressure", "actor_id", "method_name", "concurrency_group", "placement_group_id", "capture_child_tasks", "attempt_number")
    class EnvVarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    KWARG_NAMES_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_FIELD_NUMBER: _ClassVar[int]
    ENV_VARS_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_NAME_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUP_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_CHILD_TASKS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: int
    function_id: bytes
    name: str
    args: _containers.RepeatedCompositeFieldContainer[Arg]
    kwarg_names: _containers.RepeatedScalarFieldContainer[str]
    num_returns: int
    owner: Address
    max_calls: int
    env_vars: _containers.ScalarMap[str, str]
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    resources: _containers.ScalarMap[str, float]
    generator_backpressure: bool
    actor_id: bytes
    method_name: str
    concurrency_group: str
    placement_group_id: bytes
    capture_child_tasks: bool
    attempt_number: int
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[int] = ..., function_id: _Optional[bytes] = ..., name: _Optional[str] = ..., args: _Optional[_Iterable[_Union[Arg, _Mapping]]] = ..., kwarg_names: _Optional[_Iterable[str]] = ..., num_returns: _Optional[int] = ..., owner: _Optional[_Union[Address, _Mapping]] = ..., max_calls: _Optional[int] = ..., env_vars: _Optional[_Mapping[str, str]] = ..., gpu_ids: _Optional[_Iterable[str]] = ..., resources: _Optional[_Mapping[str, float]] = ..., generator_backpressure: _Optional[bool] = ..., actor_id: _Optional[bytes] = ..., method_name: _Optional[str] = ..., concurrency_group: _Optional[str] = ..., placement_group_id: _Optional[bytes] = ..., capture_child_tasks: _Optional[bool] = ..., attempt_number: _Optional[int] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("task_id", "force", "recursive")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    force: bool
    recursive: bool
    def __init__(self, task_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., recursive: _Optional[bool] = ...) -> None: ...

class TaskBatch(_message.Message):
    __slots__ = ("tasks", "cancels", "release_pins")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCELS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_PINS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    cancels: _containers.RepeatedCompositeFieldContainer[CancelRequest]
    release_pins: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., cancels: _Optional[_Iterable[_Union[CancelRequest, _Mapping]]] = ..., release_pins: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReturnObject(_message.Message):
    __slots__ = ("object_id", "data", "in_shm", "size", "is_error", "contained", "locations")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IN_SHM_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    data: bytes
    in_shm: bool
    size: int
    is_error: bool
    contained: _containers.RepeatedCompositeFieldContainer[ObjectRefProto]
    locations: _containers.RepeatedCompositeFieldContainer[Address]
    def __init__(self, object_id: _Optional[bytes] = ..., data: _Optional[bytes] = ..., in_shm: _Optional[bool] = ..., size: _Optional[int] = ..., is_error: _Optional[bool] = ..., contained: _Optional[_Iterable[_Union[ObjectRefProto, _Mapping]]] = ..., locations: _Optional[_Iterable[_Union[Address, _Mapping]]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "returns", "generator_item", "generator_index", "generator_done", "num_generator_items", "worker_exiting", "exec_seconds", "cancelled", "actor_exiting")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_ITEM_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_DONE_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATOR_ITEMS_FIELD_NUMBER: _ClassVar[int]
    WORKER_EXITING_FIELD_NUMBER: _ClassVar[int]
    EXEC_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_EXITING_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    returns: _containers.RepeatedCompositeFieldContainer[ReturnObject]
    generator_item: bool
    generator_index: int
    generator_done: bool
    num_generator_items: int
    worker_exiting: bool
    exec_seconds: float
    cancelled: bool
    actor_exiting: bool
    def __init__(self, task_id: _Optional[bytes] = ..., returns: _Optional[_Iterable[_Union[ReturnObject, _Mapping]]] = ..., generator_item: _Optional[bool] = ..., generator_index: _Optional[int] = ..., generator_done: _Optional[bool] = ..., num_generator_items: _Optional[int] = ..., worker_exiting: _Optional[bool] = ..., exec_seconds: _Optional[float] = ..., cancelled: _Optional[bool] = ..., actor_exiting: _Optional[bool] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("object_id", "timeout", "recover")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RECOVER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    timeout: float
    recover: bool
    def __init__(self, object_id: _Optional[bytes] = ..., timeout: _Optional[float] = ..., recover: _Optional[bool] = ...) -> None: ...

class GetObjectReply(_message.Message):
    __slots__ = ("ready", "object", "error")
    READY_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    object: ReturnObject
    error: str
    def __init__(self, ready: _Optional[bool] = ..., object: _Optional[_Union[ReturnObject, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class LocationUpdate(_message.Message):
    __slots__ = ("object_id", "location")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    location: Address
    def __init__(self, object_id: _Optional[bytes] = ..., location: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class BorrowUpdate(_message.Message):
    __slots__ = ("add", "remove", "borrower")
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    BORROWER_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[bytes]
    remove: _containers.RepeatedScalarFieldContainer[bytes]
    borrower: Address
    def __init__(self, add: _Optional[_Iterable[bytes]] = ..., remove: _Optional[_Iterable[bytes]] = ..., borrower: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class StartActorRequest(_message.Message):
    __slots__ = ("spec", "gpu_ids")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    spec: ActorSpec
    gpu_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, spec: _Optional[_Union[ActorSpec, _Mapping]] = ..., gpu_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StartActorReply(_message.Message):
    __slots__ = ("ok", "error", "pid")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: bytes
    pid: int
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[bytes] = ..., pid: _Optional[int] = ...) -> None: ...

class ObjectsInfoRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("object_id", "size", "reference_type", "task_status", "owned", "owner", "in_shm", "node_ids", "num_borrowers")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    OWNED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    IN_SHM_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    NUM_BORROWERS_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    reference_type: str
    task_status: str
    owned: bool
    owner: str
    in_shm: bool
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    num_borrowers: int
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., reference_type: _Optional[str] = ..., task_status: _Optional[str] = ..., owned: _Optional[bool] = ..., owner: _Optional[str] = ..., in_shm: _Optional[bool] = ..., node_ids: _Optional[_Iterable[str]] = ..., num_borrowers: _Optional[int] = ...) -> None: ...

class ObjectsInfoReply(_message.Message):
    __slots__ = ("objects", "worker_id", "pid", "node_id", "is_driver", "ip", "total")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_DRIVER_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectInfo]
    worker_id: str
    pid: int
    node_id: str
    is_driver: bool
    ip: str
    total: int
    def __init__(self, objects: _Optional[_Iterable[_Union[ObjectInfo, _Mapping]]] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., node_id: _Optional[str] = ..., is_driver: _Optional[bool] = ..., ip: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class TaskEventBatch(_message.Message):
    __slots__ = ("events", "worker_id", "node_id", "pid", "dropped")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    events: bytes
    worker_id: str
    node_id: str
    pid: int
    dropped: int
    def __init__(self, events: _Optional[bytes] = ..., worker_id: _Optional[str] = ..., node_id: _Optional[str] = ..., pid: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class StateFilter(_message.Message):
    __slots__ = ("key", "predicate", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    predicate: str
    value: str
    def __init__(self, key: _Optional[str] = ..., predicate: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TaskEventQuery(_message.Message):
    __slots__ = ("filters", "limit", "summarize", "newest_first")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[StateFilter]
    limit: int
    summarize: bool
    newest_first: bool
    def __init__(self, filters: _Optional[_Iterable[_Union[StateFilter, _Mapping]]] = ..., limit: _Optional[int] = ..., summarize: _Optional[bool] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class TaskEventReply(_message.Message):
    __slots__ = ("tasks", "total", "num_dropped", "summary")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NUM_DROPPED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    tasks: bytes
    total: int
    num_dropped: int
    summary: bytes
    def __init__(self, tasks: _Optional[bytes] = ..., total: _Optional[int] = ..., num_dropped: _Optional[int] = ..., summary: _Optional[bytes] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("driver", "start_time", "end_time")
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    driver: DriverInfo
    start_time: float
    end_time: float
    def __init__(self, driver: _Optional[_Union[DriverInfo, _Mapping]] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class WorkerDeathInfo(_message.Message):
    __slots__ = ("death", "time")
    DEATH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    death: WorkerDeath
    time: float
    def __init__(self, death: _Optional[_Union[WorkerDeath, _Mapping]] = ..., time: _Optional[float] = ...) -> None: ...

class WorkerDeathList(_message.Message):
    __slots__ = ("deaths",)
    DEATHS_FIELD_NUMBER: _ClassVar[int]
    deaths: _containers.RepeatedCompositeFieldContainer[WorkerDeathInfo]
    def __init__(self, deaths: _Optional[_Iterable[_Union[WorkerDeathInfo, _Mapping]]] = ...) -> None: ...

class LogFile(_message.Message):
    __slots__ = ("name", "size", "pid", "is_err")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IS_ERR_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    pid: int
    is_err: bool
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., pid: _Optional[int] = ..., is_err: _Optional[bool] = ...) -> None: ...

class LogFileList(_message.Message):
    __slots__ = ("files", "node_id")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[LogFile]
    node_id: str
    def __init__(self, files: _Optional[_Iterable[_Union[LogFile, _Mapping]]] = ..., node_id: _Optional[str] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("name", "pid", "is_err", "tail", "follow", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IS_ERR_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    pid: int
    is_err: bool
    tail: int
    follow: bool
    offset: int
    def __init__(self, name: _Optional[str] = ..., pid: _Optional[int] = ..., is_err: _Optional[bool] = ..., tail: _Optional[int] = ..., follow: _Optional[bool] = ..., offset: _Optional[int] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("data", "error")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    error: str
    def __init__(self, data: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...
