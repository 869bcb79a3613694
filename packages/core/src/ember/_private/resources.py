"""Resource sets and per-node resource accounting.

Quantities are kept as integers in units of 1/10000 (like Ray's FixedPoint),
because the scheduler adds and subtracts fractions such as 0.1 thousands of
times; with floats, ``1.0 - 0.1 * 10`` drifts and a node could end up unable to
fit a request it is actually free to run, or "free" a resource it never had.

Everything here except :func:`build_node_resources` and
:func:`total_memory_bytes` is pure bookkeeping with no I/O, so the scheduler
can be tested without a machine.
"""
from __future__ import annotations

import itertools
import logging
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, TypeGuard

from ember._private import accelerators

logger = logging.getLogger(__name__)

__all__ = [
    "UNIT_SCALE",
    "Allocation",
    "NodeResources",
    "ResourceSet",
    "build_node_resources",
    "from_units",
    "to_units",
    "total_memory_bytes",
]

UNIT_SCALE = 10_000
"""Units per 1.0 of any resource: quantities have 4-decimal precision."""

# Ray's default cap on the object store: beyond this, a bigger store mostly
# wastes RAM that tasks could use.
_OBJECT_STORE_CAP_BYTES = 200 * 10**9
_MEMORY_FRACTION = 0.7
_OBJECT_STORE_FRACTION = 0.3

# Names the user must set through dedicated keywords: a "CPU" hidden inside
# resources= would bypass the defaults and validation those keywords get.
_RESERVED_RESOURCES = {
    "CPU": "num_cpus",
    "GPU": "num_gpus",
    "memory": "memory",
    "object_store_memory": "object_store_memory",
}

# Well-known resources print first so reprs read the same across nodes.
_DISPLAY_ORDER = {"CPU": 0, "GPU": 1, "memory": 2, "object_store_memory": 3}


def _is_number(value: object) -> TypeGuard[float]:
    # bool is an int subclass, but CPU=True is almost certainly a mistake.
    return isinstance(value, Real) and not isinstance(value, bool)


def to_units(name: str, value: float) -> int:
    """Convert a quantity to fixed-point units, validating it.

    Raises ValueError naming ``name`` when the value is not a finite number
    >= 0. Precision beyond 1/10000 is rounded away, as Ray does.
    """
    if not _is_number(value):
        raise ValueError(
            f"resource {name!r} has quantity {value!r} of type {type(value).__name__}; "
            f"resource quantities must be numbers, e.g. {{{name!r}: 1}}")
    if isinstance(value, int):
        units = value * UNIT_SCALE  # exact even for byte counts beyond 2**53 / UNIT_SCALE
    else:
        fval = float(value)
        if not math.isfinite(fval):
            raise ValueError(
                f"resource {name!r} has quantity {value!r}; resource quantities must be "
                f"finite numbers >= 0, e.g. {{{name!r}: 1}}")
        # Whole floats go through int() so large byte counts stay exact.
        units = int(fval) * UNIT_SCALE if fval.is_integer() else round(fval * UNIT_SCALE)
    if units < 0:
        raise ValueError(
            f"resource {name!r} has negative quantity {value!r}; resource quantities "
            f"must be >= 0 (use 0 or leave {name!r} out to request none)")
    return units


def from_units(units: int) -> float:
    """Convert fixed-point units back to a float quantity."""
    # int / int is correctly rounded, so whole quantities come back exact.
    return units / UNIT_SCALE


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"resource name {name!r} is invalid; resource names must be non-empty "
            "strings such as 'CPU' or 'my_accelerator'")


def _format_units(units: int) -> str:
    if units % UNIT_SCALE == 0:
        return str(units // UNIT_SCALE)
    return f"{units / UNIT_SCALE:.4f}".rstrip("0")


def _sort_key(name: str) -> tuple[int, str]:
    return (_DISPLAY_ORDER.get(name, len(_DISPLAY_ORDER)), name)


class ResourceSet(Mapping[str, float]):
    """An immutable mapping of resource name to quantity, with exact arithmetic.

    Zero quantities are dropped, so ``ResourceSet({"GPU": 0}) ==
    ResourceSet({})``. The public constructor rejects negative quantities;
    subtraction may still produce negative entries, which is how an
    oversubscribed node's available CPU is represented.
    """

    __slots__ = ("_units", "_hash")

    def __init__(self, resources: Mapping[str, float] | None = None) -> None:
        units: dict[str, int] = {}
        if resources is not None:
            if not hasattr(resources, "items"):
                raise ValueError(
                    f"resources must be a mapping of name to quantity such as "
                    f"{{'CPU': 1}}, got {type(resources).__name__} {resources!r}")
            for name, value in resources.items():
                _check_name(name)
                units[name] = to_units(name, value)
        self._set_units(units)

    def _set_units(self, units: Mapping[str, int]) -> None:
        self._units: dict[str, int] = {
            name: units[name] for name in sorted(units, key=_sort_key) if units[name]}
        self._hash: int | None = None

    @classmethod
    def _from_units(cls, units: Mapping[str, int]) -> ResourceSet:
        # Internal constructor: skips validation and allows negative entries.
        obj = cls.__new__(cls)
        obj._set_units(units)
        return obj

    def units(self, name: str) -> int:
        """Return the exact fixed-point quantity of ``name`` (0 when absent)."""
        return self._units.get(name, 0)

    # Mapping protocol
    def __getitem__(self, name: str) -> float:
        return from_units(self._units[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, name: object) -> bool:
        return name in self._units

    # Arithmetic
    def __add__(self, other: Mapping[str, float]) -> ResourceSet:
        other_set = _as_resource_set(other)
        units = dict(self._units)
        for name, value in other_set._units.items():
            units[name] = units.get(name, 0) + value
        return ResourceSet._from_units(units)

    def __sub__(self, other: Mapping[str, float]) -> ResourceSet:
        other_set = _as_resource_set(other)
        units = dict(self._units)
        for name, value in other_set._units.items():
            units[name] = units.get(name, 0) - value
        return ResourceSet._from_units(units)

    def fits_in(self, other: Mapping[str, float]) -> bool:
        """Whether every quantity here is <= the same resource in ``other`` (absent = 0)."""
        other_set = _as_resource_set(other)
        return all(value <= other_set._units.get(name, 0) for name, value in self._units.items())

    def is_empty(self) -> bool:
        """Whether the set requests nothing at all."""
        return not self._units

    def to_dict(self) -> dict[str, float]:
        """Return a plain ``{name: float}`` dict (e.g. for protobuf maps)."""
        return {name: from_units(value) for name, value in self._units.items()}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResourceSet):
            return self._units == other._units
        if isinstance(other, Mapping):
            try:
                return self._units == ResourceSet(other)._units
            except ValueError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._units.items()))
        return self._hash

    def __repr__(self) -> str:
        body = ", ".join(f"{name}: {_format_units(value)}" for name, value in self._units.items())
        return "{" + body + "}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle through the unit dict so negative (oversubscribed) sets round-trip too.
        return (ResourceSet._from_units, (dict(self._units),))


def _as_resource_set(value: Mapping[str, float]) -> ResourceSet:
    return value if isinstance(value, ResourceSet) else ResourceSet(value)


_allocation_ids = itertools.count(1)


@dataclass(frozen=True, eq=False)
class Allocation:
    """Resources granted to one lease, and which GPU instances back them.

    Compared by identity: two grants of the same shape are still two separate
    holdings, and each must be released exactly once.
    """

    resources: ResourceSet
    gpu_ids: tuple[str, ...]
    allocation_id: int = field(default_factory=lambda: next(_allocation_ids))


def _check_gpu_request(gpu_units: int) -> None:
    if gpu_units < 0:
        raise ValueError(f"GPU request {from_units(gpu_units)} is negative; request GPU >= 0")
    if gpu_units > UNIT_SCALE and gpu_units % UNIT_SCALE:
        raise ValueError(
            f"GPU request {from_units(gpu_units)} is invalid: a request above 1 GPU must "
            "be a whole number (use num_gpus=1 or num_gpus=2, or a fraction <= 1 to share a GPU)")


class NodeResources:
    """Total and available resources of one node, with per-GPU fractional accounting.

    Aggregate quantities alone cannot place fractional GPUs: 0.7 + 0.7 GPU
    fits into 2 GPUs by sum but not into one device, and the worker must be
    told which device to use. So every GPU id also tracks its own free share.
    """

    def __init__(self, total: Mapping[str, float], gpu_ids: list[str]) -> None:
        self._total = _as_resource_set(total)
        ids = [str(gpu_id) for gpu_id in gpu_ids]
        if len(set(ids)) != len(ids):
            raise ValueError(f"gpu_ids {ids} contain duplicates; each GPU id must appear once")
        if self._total.units("GPU") != len(ids) * UNIT_SCALE:
            raise ValueError(
                f"total GPU={self._total.get('GPU', 0)} does not match the {len(ids)} GPU ids "
                f"{ids}; pass exactly one id per whole GPU")
        self._available: dict[str, int] = dict(self._total._units)
        self._gpu_free: dict[str, int] = {gpu_id: UNIT_SCALE for gpu_id in ids}
        self._live: set[Allocation] = set()
        self._lent: set[Allocation] = set()

    @property
    def total(self) -> ResourceSet:
        """Everything the node has."""
        return self._total

    @property
    def available(self) -> ResourceSet:
        """What is free now; CPU can be negative while blocked workers are oversubscribed."""
        return ResourceSet._from_units(self._available)

    @property
    def gpu_free(self) -> dict[str, float]:
        """Free fraction of each GPU instance, by id."""
        return {gpu_id: from_units(units) for gpu_id, units in self._gpu_free.items()}

    def can_ever_fit(self, request: Mapping[str, float]) -> bool:
        """Whether ``request`` would fit on this node if it were idle.

        Raises ValueError for GPU requests that are invalid anywhere (e.g. 1.5).
        """
        req = _as_resource_set(request)
        _check_gpu_request(req.units("GPU"))
        # GPU totals are whole and one per id, so the aggregate test also
        # covers "a fraction needs one device" and "N GPUs need N devices".
        return req.fits_in(self._total)

    def try_allocate(self, request: Mapping[str, float]) -> Allocation | None:
        """Reserve ``request`` now, or return None if it does not fit at the moment.

        A GPU request below 1 is packed onto a single device (best fit: the
        device with the least free share that still fits, so whole devices stay
        free for whole-GPU requests). A request of N >= 1 GPUs takes N entirely
        free devices. Raises ValueError for fractional requests above 1.
        """
        req = _as_resource_set(request)
        if any(value < 0 for value in req._units.values()):
            raise ValueError(f"request {req} has negative quantities; requests must be >= 0")
        gpu_units = req.units("GPU")
        _check_gpu_request(gpu_units)
        if not req.fits_in(self.available):
            return None
        chosen = self._pick_gpus(gpu_units)
        if chosen is None:
            return None
        for name, value in req._units.items():
            self._available[name] = self._available.get(name, 0) - value
        share = _per_gpu_share(gpu_units)
        for gpu_id in chosen:
            self._gpu_free[gpu_id] -= share
        allocation = Allocation(req, tuple(chosen))
        self._live.add(allocation)
        return allocation

    def _pick_gpus(self, gpu_units: int) -> list[str] | None:
        if gpu_units == 0:
            return []
        if gpu_units < UNIT_SCALE:
            best: str | None = None
            for gpu_id, free in self._gpu_free.items():
                # Strict < keeps the first (lowest) id on ties, for determinism.
                if free >= gpu_units and (best is None or free < self._gpu_free[best]):
                    best = gpu_id
            return None if best is None else [best]
        wanted = gpu_units // UNIT_SCALE
        free_ids = [gpu_id for gpu_id, free in self._gpu_free.items() if free == UNIT_SCALE]
        return free_ids[:wanted] if len(free_ids) >= wanted else None

    def add_capacity(self, extra: Mapping[str, float]) -> None:
        """Add resources to total and available (a committed placement-group bundle)."""
        units = _as_resource_set(extra)._units
        total = dict(self._total._units)
        for name, value in units.items():
            total[name] = total.get(name, 0) + value
            self._available[name] = self._available.get(name, 0) + value
        self._total = ResourceSet._from_units(total)

    def remove_capacity(self, extra: Mapping[str, float]) -> None:
        """Take back what add_capacity added (the bundle was removed)."""
        units = _as_resource_set(extra)._units
        total = dict(self._total._units)
        for name, value in units.items():
            total[name] = total.get(name, 0) - value
            self._available[name] = self._available.get(name, 0) - value
            if total[name] <= 0:
                total.pop(name)
                self._available.pop(name, None)
        self._total = ResourceSet._from_units(total)

    def release(self, alloc: Allocation) -> None:
        """Return ``alloc`` to the pool. Raises ValueError if it is not held here."""
        if alloc not in self._live:
            raise ValueError(
                f"allocation {alloc.allocation_id} ({alloc.resources}) is not held on this "
                "node; it was already released or came from another node")
        self._live.remove(alloc)
        returned = dict(alloc.resources._units)
        if alloc in self._lent:
            # Its CPU went back to the pool when it was lent; adding it again
            # would mint CPU out of nothing.
            self._lent.remove(alloc)
            returned.pop("CPU", None)
        for name, value in returned.items():
            self._available[name] = self._available.get(name, 0) + value
        share = _per_gpu_share(alloc.resources.units("GPU"))
        for gpu_id in alloc.gpu_ids:
            self._gpu_free[gpu_id] += share

    def lend_cpu(self, alloc: Allocation) -> bool:
        """Give ``alloc``'s CPU back to the pool while its worker is blocked in ``get``.

        Without this, a task waiting on its children would hold the CPU they
        need and the node could deadlock. Returns False if already lent.
        """
        self._check_live(alloc)
        if alloc in self._lent:
            return False
        self._lent.add(alloc)
        self._available["CPU"] = self._available.get("CPU", 0) + alloc.resources.units("CPU")
        return True

    def reclaim_cpu(self, alloc: Allocation) -> bool:
        """Take lent CPU back when the worker unblocks, even if that oversubscribes.

        The unblocked task must continue regardless, so available CPU may go
        negative (as in Ray) until running work finishes. Returns False if the
        CPU was not lent.
        """
        self._check_live(alloc)
        if alloc not in self._lent:
            return False
        self._lent.remove(alloc)
        self._available["CPU"] = self._available.get("CPU", 0) - alloc.resources.units("CPU")
        return True

    def _check_live(self, alloc: Allocation) -> None:
        if alloc not in self._live:
            raise ValueError(
                f"allocation {alloc.allocation_id} ({alloc.resources}) is not held on this node")

    def __repr__(self) -> str:
        return f"NodeResources(total={self._total}, available={self.available})"


def _per_gpu_share(gpu_units: int) -> int:
    # A fraction sits on one device; whole requests take each device entirely.
    return gpu_units if gpu_units < UNIT_SCALE else UNIT_SCALE


# ---------------------------------------------------------------- node totals

def _read_int_file(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" when unlimited


def total_memory_bytes() -> int:
    """Physical RAM usable by this node, in bytes (0 if it cannot be determined).

    A container's cgroup limit is honoured when it is lower than the host's
    RAM; otherwise a node in an 8 GiB container on a 1 TiB host would
    advertise 700 GB of task memory and get OOM-killed.
    """
    total: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024  # reported in kB
                    break
    except (OSError, ValueError, IndexError):
        total = None
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (OSError, ValueError, AttributeError):
            total = None
    limits = [limit for limit in (
        _read_int_file("/sys/fs/cgroup/memory.max"),  # cgroup v2
        _read_int_file("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
    ) if limit]
    candidates = ([total] if total else []) + limits
    return min(candidates) if candidates else 0


def _default_num_cpus() -> int:
    # The affinity mask is what this process may actually run on (taskset,
    # cgroup cpusets), which can be far fewer than the host's cores.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_quantity(keyword: str, value: object, example: str) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
        raise ValueError(
            f"{keyword}={value!r} is invalid: it must be a finite number >= 0, e.g. {example}")
    return value


def build_node_resources(
    num_cpus: float | None,
    num_gpus: float | None,
    resources: dict | None,
    memory: int | None,
    object_store_memory: int | None,
) -> tuple[dict[str, float], list[str], str | None]:
    """Compute a node's total resources from ``init``/``start`` arguments and the machine.

    Returns ``(total, gpu_ids, accelerator_type)``. Arguments left as None are
    detected: CPUs from the affinity mask, GPUs from the driver, task memory as
    70% of RAM and the object store as 30% of RAM (capped at 200 GB). Zero
    quantities are left out of ``total``. Raises ValueError, naming the
    argument, for negative, non-finite or non-numeric quantities, bad resource
    names, and CPU/GPU/memory given inside ``resources``.
    """
    total: dict[str, float] = {}

    if num_cpus is None:
        num_cpus = _default_num_cpus()
    total["CPU"] = _check_quantity("num_cpus", num_cpus, "num_cpus=4")

    detected_ids, accelerator_type = accelerators.detect_gpus()
    if num_gpus is None:
        gpu_ids = list(detected_ids)
    else:
        _check_quantity("num_gpus", num_gpus, "num_gpus=1")
        if not float(num_gpus).is_integer():
            raise ValueError(
                f"num_gpus={num_gpus!r} is invalid for a node: a node has whole GPUs; "
                "pass an integer such as num_gpus=1 (tasks may still request fractions)")
        gpu_ids = _choose_gpu_ids(detected_ids, int(num_gpus))
    if not gpu_ids:
        accelerator_type = None  # Ray advertises a type only for nodes that have GPUs
    total["GPU"] = len(gpu_ids)

    ram = total_memory_bytes()
    if memory is None:
        memory = int(ram * _MEMORY_FRACTION)
    total["memory"] = _check_quantity("memory", memory, "memory=8 * 1024**3")
    if object_store_memory is None:
        object_store_memory = min(int(ram * _OBJECT_STORE_FRACTION), _OBJECT_STORE_CAP_BYTES)
    elif (not isinstance(object_store_memory, numbers.Integral)
          or isinstance(object_store_memory, bool) or object_store_memory <= 0):
        # The store's capacity: objects beyond it spill to disk (store_manager.py).
        raise ValueError(
            f"object_store_memory={object_store_memory!r} is invalid: it must be a whole number "
            "of bytes > 0, e.g. object_store_memory=2 * 1024**3 (leave it out for 30% of "
            "the machine's memory)")
    total["object_store_memory"] = int(object_store_memory)

    if accelerator_type:
        total[accelerators.accelerator_resource_name(accelerator_type)] = 1

    if resources is not None:
        if not isinstance(resources, Mapping):
            raise ValueError(
                f"resources={resources!r} is invalid: it must be a dict of custom resource "
                "name to quantity, e.g. resources={'my_resource': 2}")
        for name, value in resources.items():
            _check_name(name)
            if name in _RESERVED_RESOURCES:
                keyword = _RESERVED_RESOURCES[name]
                raise ValueError(
                    f"resources={{{name!r}: {value!r}}} is not allowed: use the "
                    f"{keyword}= argument instead of {name!r} in resources=")
            total[name] = _check_quantity(f"resources[{name!r}]", value, f"resources={{{name!r}: 1}}")

    clean = {name: float(value) for name, value in total.items() if value}
    return clean, gpu_ids, accelerator_type


def _choose_gpu_ids(detected: list[str], wanted: int) -> list[str]:
    if wanted <= len(detected):
        return list(detected[:wanted])
    # More GPUs than detected: trust the user (Ray does, with a warning) but
    # keep the real ids first so CUDA_VISIBLE_DEVICES still points at devices
    # that exist, and give the rest fresh numeric ids that cannot collide.
    if detected:
        logger.warning("num_gpus=%d but only %d GPU(s) detected (%s); advertising %d anyway",
                       wanted, len(detected), ",".join(detected), wanted)
    ids = list(detected)
    taken = set(ids)
    candidate = 0
    while len(ids) < wanted:
        if str(candidate) not in taken:
            ids.append(str(candidate))
            taken.add(str(candidate))
        candidate += 1
    return ids
