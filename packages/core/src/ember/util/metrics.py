"""Application metrics, Ray's ``ray.util.metrics``: Counter, Gauge, Histogram.

Create them anywhere (driver, task, actor) and record values; every process
sends what changed to its node every few seconds, and each node serves the
sum over its processes to Prometheus on its metrics endpoint (see
``ember.nodes()[i]["MetricsExportPort"]``; requests need the cluster token as
``Authorization: Bearer <token>``). Names are exported with the ``ember_``
prefix: ``Counter("requests")`` is scraped as ``ember_requests_total``.

>>> from ember.util.metrics import Counter, Gauge, Histogram
>>> requests = Counter("requests", description="Requests served.", tag_keys=("route",))
>>> requests.inc(tags={"route": "/predict"})
>>> queue_len = Gauge("queue_length", tag_keys=("queue",))
>>> queue_len.set_default_tags({"queue": "main"})
>>> queue_len.set(7)
>>> latency = Histogram("latency_s", boundaries=[0.01, 0.1, 1.0])
>>> latency.observe(0.05)

Recording is cheap (a dict update under a lock; no network call). Values
recorded before ``ember.init`` are kept and sent once the process connects.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple, Union

from .._private import metrics_registry as _reg

__all__ = ["Counter", "Gauge", "Histogram", "Metric"]

# Prometheus's rules: a metric name may hold colons, a label name may not.
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TAG_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Number = Union[int, float]


class Metric:
    """What Counter, Gauge and Histogram share: name, tags and default tags.

    ``tag_keys`` are the tag names every recorded value carries; each value is
    given per call (``tags=``) or once for all calls with ``set_default_tags``.
    """

    _kind = 0

    def __init__(self, name: str, description: str = "",
                 tag_keys: Optional[Tuple[str, ...]] = None,
                 _boundaries: Tuple[float, ...] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Empty name is not allowed: give the metric a name, e.g. "
                             "Counter('requests')")
        if not _NAME_RE.match(name):
            raise ValueError(f"metric name {name!r} is not valid: use letters, digits, '_' "
                             "and ':' only, not starting with a digit (e.g. 'requests_total')")
        if not isinstance(description, str):
            raise TypeError(f"description must be a str, got {type(description).__name__}")
        if tag_keys is None:
            tag_keys = ()
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys).__name__} "
                            f"(write tag_keys=({', '.join(map(repr, tag_keys))},))"
                            if isinstance(tag_keys, (list, set)) else
                            f"tag_keys should be a tuple type, got: {type(tag_keys).__name__}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"tag keys must be strings, got {key!r} "
                                f"({type(key).__name__})")
            if not _TAG_RE.match(key) or key.startswith("__"):
                raise ValueError(f"tag key {key!r} is not valid: use letters, digits and '_', "
                                 "not starting with a digit or '__'")
        if len(set(tag_keys)) != len(tag_keys):
            raise ValueError(f"tag_keys {tag_keys} name a key twice: list each once")
        self._name = name
        self._description = description
        self._tag_keys: Tuple[str, ...] = tag_keys
        self._default_tags: Dict[str, str] = {}
        self._family = _reg.registry.declare(name, self._kind, description, tag_keys,
                                             _boundaries)

    # ------------------------------------------------------------ tags
    def set_default_tags(self, default_tags: Dict[str, str]) -> "Metric":
        """Tag values used when a call does not give them (replaces earlier defaults).

        >>> c = Counter("hits", tag_keys=("host",)).set_default_tags({"host": "a"})
        """
        self._check_tags(default_tags, "default_tags")
        self._default_tags = dict(default_tags)
        return self

    def _check_tags(self, tags: Any, what: str) -> None:
        if not isinstance(tags, dict):
            raise TypeError(f"{what} must be a dict of tag key to str value, got "
                            f"{type(tags).__name__}")
        unknown = sorted(str(k) for k in tags if k not in self._tag_keys)
        if unknown:
            raise ValueError(f"Unrecognized tag keys {unknown} for metric {self._name!r}: "
                             f"its tag_keys are {self._tag_keys}; declare them there first")
        for k, v in tags.items():
            if not isinstance(v, str):
                raise TypeError(f"tag values must be str: {what}[{k!r}] is {v!r} "
                                f"({type(v).__name__}); convert it with str()")

    def _tag_values(self, tags: Optional[Dict[str, str]]) -> Tuple[str, ...]:
        if tags:
            self._check_tags(tags, "tags")
            merged = {**self._default_tags, **tags}
        else:
            merged = self._default_tags
        missing = [k for k in self._tag_keys if k not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {', '.join(missing)} (metric "
                             f"{self._name!r}): pass tags={{...}} or call set_default_tags")
        return tuple(merged[k] for k in self._tag_keys)

    def _record(self, value: Number, tags: Optional[Dict[str, str]]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric values must be numbers, got {value!r} "
                            f"({type(value).__name__})")
        _reg.registry.record(self._family, self._tag_values(tags), float(value))

    # ------------------------------------------------------------ Ray's introspection
    @property
    def info(self) -> Dict[str, Any]:
        """Name, description, tag keys and default tags (Ray's ``Metric.info``)."""
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": dict(self._default_tags)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, tag_keys={self._tag_keys})"


class Counter(Metric):
    """A total that only grows (requests served, bytes sent).

    >>> done = Counter("jobs_done", tag_keys=("kind",))
    >>> done.inc(tags={"kind": "resize"})
    >>> done.inc(5, tags={"kind": "crop"})
    """

    _kind = _reg.COUNTER

    def inc(self, value: Number = 1.0, tags: Optional[Dict[str, str]] = None) -> None:
        """Add ``value`` (> 0) to the count of these tags."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"value must be > 0, got {value}: a counter only grows (use a "
                             "Gauge for values that go down)")
        self._record(value, tags)


class Gauge(Metric):
    """A value that goes up and down (queue length, memory in use): the last one set.

    >>> g = Gauge("in_flight")
    >>> g.set(3)
    """

    _kind = _reg.GAUGE

    def set(self, value: Optional[Number], tags: Optional[Dict[str, str]] = None) -> None:
        """Set the value for these tags (``None`` is ignored, as in Ray)."""
        if value is None:
            return
        self._record(value, tags)


class Histogram(Metric):
    """The distribution of observed values over fixed buckets (latencies, sizes).

    ``boundaries`` are the buckets' upper bounds, positive and increasing; a
    last bucket for everything larger is implied.

    >>> h = Histogram("request_s", boundaries=[0.1, 0.5, 1.0], tag_keys=("route",))
    >>> h.observe(0.3, tags={"route": "/"})
    """

    _kind = _reg.HISTOGRAM

    def __init__(self, name: str, description: str = "",
                 boundaries: Optional[List[float]] = None,
                 tag_keys: Optional[Tuple[str, ...]] = None) -> None:
        if not boundaries:
            raise ValueError("boundaries argument should be provided when using the Histogram "
                             "class: e.g. Histogram('latency_s', boundaries=[0.1, 1.0, 10.0])")
        if not isinstance(boundaries, (list, tuple)):
            raise TypeError(f"boundaries must be a list of numbers, got "
                            f"{type(boundaries).__name__}")
        for i, b in enumerate(boundaries):
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0:
                raise ValueError(f"Invalid `boundaries` argument at index {i}, {list(boundaries)}:"
                                 " use positive numbers")
            if i and not b > boundaries[i - 1]:
                raise ValueError(f"`boundaries` must be strictly increasing: {boundaries[i - 1]} "
                                 f"then {b} at index {i} in {list(boundaries)}; sort them and "
                                 "drop duplicates")
        if tag_keys and "le" in tag_keys:
            raise ValueError("'le' cannot be a Histogram tag key: Prometheus uses it for the "
                             "bucket bounds; rename it")
        self.boundaries = [float(b) for b in boundaries]
        super().__init__(name, description, tag_keys, tuple(self.boundaries))

    def observe(self, value: Number, tags: Optional[Dict[str, str]] = None) -> None:
        """Count ``value`` in its bucket (and in the sum)."""
        self._record(value, tags)

    @property
    def info(self) -> Dict[str, Any]:
        return {**super().info, "boundaries": list(self.boundaries)}
