"""Injected RPC failures for testing retry paths (Ray's ``RAY_testing_rpc_failure``).

Set ``EMBER_TESTING_RPC_FAILURE`` before starting a cluster (every process it
starts inherits it) to make unary calls fail as if the network dropped them::

    EMBER_TESTING_RPC_FAILURE="NodeManager.RequestWorkerLease=3:25:25,ControlService.GetActor=2:50:0"

Each comma-separated entry is ``METHOD=MAX:REQ:RESP``:

- ``METHOD``: ``Service.Method`` as in ember.proto (``NodeManager.RequestWorkerLease``),
  a bare method name (any service), or ``*`` (every unary method). Ray's spelling
  (``NodeManagerService.grpc_client.RequestWorkerLease``) is accepted too.
- ``MAX``: how many failures to inject into that method, per process (-1: no limit).
- ``REQ``: percent of calls failed before they are sent (the server never sees them).
- ``RESP``: percent of calls whose reply is dropped after the server handled them.

Either way the caller sees ``grpc.RpcError`` with code UNAVAILABLE, exactly what a
broken connection gives, so callers must retry idempotently. Streams are not
touched. Without the variable nothing is intercepted (no cost).
"""
from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

ENV = "EMBER_TESTING_RPC_FAILURE"

REQUEST = "request"
RESPONSE = "response"


@dataclass(frozen=True)
class Rule:
    max_failures: int        # -1: unlimited
    request_pct: float
    response_pct: float


def parse(spec: str) -> dict[str, Rule]:
    """Parse the variable's value into rules keyed by method pattern.

    >>> parse("NodeManager.RequestWorkerLease=3:25:25")
    {'NodeManager.RequestWorkerLease': Rule(max_failures=3, request_pct=25.0, response_pct=25.0)}
    """
    rules: dict[str, Rule] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        method, sep, value = item.partition("=")
        method = _normalize(method.strip())
        fields = value.split(":")
        if not sep or not method or len(fields) != 3:
            raise ValueError(
                f"{ENV}: bad entry {item!r}: write METHOD=MAX:REQ:RESP, e.g. "
                "'NodeManager.RequestWorkerLease=3:25:25' (at most 3 failures, 25% of requests "
                "dropped before sending, 25% of replies dropped)")
        try:
            max_failures = int(fields[0])
            request_pct, response_pct = float(fields[1]), float(fields[2])
        except ValueError:
            raise ValueError(f"{ENV}: bad numbers in {item!r}: MAX is an integer (-1 for no "
                             "limit), REQ and RESP are percentages") from None
        if max_failures < -1 or not (0 <= request_pct <= 100 and 0 <= response_pct <= 100
                                     and request_pct + response_pct <= 100):
            raise ValueError(f"{ENV}: {item!r}: MAX must be >= -1 and REQ, RESP percentages "
                             "between 0 and 100 that add up to at most 100")
        rules[method] = Rule(max_failures, request_pct, response_pct)
    return rules


def _normalize(method: str) -> str:
    # Ray spells it "NodeManagerService.grpc_client.RequestWorkerLease".
    parts = method.split(".")
    if len(parts) == 3 and parts[1] == "grpc_client":
        service = parts[0]
        if service.endswith("Service") and service != "ControlService":
            service = service[: -len("Service")]
        return f"{service}.{parts[2]}"
    return method


class ChaosPolicy:
    """Decides, call by call, whether to fail it and how (thread-safe).

    >>> p = ChaosPolicy(parse("NodeManager.GetStatus=1:100:0"))
    >>> p.decide("NodeManager.GetStatus"), p.decide("NodeManager.GetStatus")
    ('request', None)
    """

    def __init__(self, rules: dict[str, Rule], rng: random.Random | None = None) -> None:
        self._rules = rules
        self._rng = rng or random.Random()
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def _rule(self, method: str) -> tuple[str, Rule] | None:
        bare = method.rpartition(".")[2]
        for key in (method, bare, "*"):
            rule = self._rules.get(key)
            if rule is not None:
                return key, rule
        return None

    def decide(self, method: str) -> str | None:
        """``"request"``, ``"response"`` or None for a call to ``Service.Method``."""
        found = self._rule(method)
        if found is None:
            return None
        key, rule = found
        with self._lock:
            used = self._failures.get(key, 0)
            if rule.max_failures != -1 and used >= rule.max_failures:
                return None
            roll = self._rng.random() * 100
            if roll < rule.request_pct:
                verdict = REQUEST
            elif roll < rule.request_pct + rule.response_pct:
                verdict = RESPONSE
            else:
                return None
            self._failures[key] = used + 1
            return verdict

    def failures(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failures)


class InjectedFailure(grpc.RpcError, grpc.Call, grpc.Future):
    """What a dropped call looks like to the caller: UNAVAILABLE, like a lost connection.

    ``inner`` is the real call when the server did handle it (reply dropped): the
    failure is reported once that call completes.
    """

    def __init__(self, method: str, where: str, inner: Any = None) -> None:
        super().__init__()
        self._method = method
        self._where = where
        self._inner = inner

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return (f"{self._method}: {self._where} dropped by {ENV} (injected failure)")

    def __str__(self) -> str:
        return f"<InjectedFailure UNAVAILABLE: {self.details()}>"

    def initial_metadata(self) -> Any:
        return None

    def trailing_metadata(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def add_callback(self, callback: Callable) -> bool:
        return False

    def running(self) -> bool:
        return self._inner is not None and self._inner.running()

    def done(self) -> bool:
        return self._inner is None or self._inner.done()

    def _wait(self, timeout: float | None) -> None:
        if self._inner is not None:
            try:
                self._inner.result(timeout)
            except grpc.FutureTimeoutError:
                raise
            except Exception:  # noqa: BLE001, S110 - the real outcome is being replaced
                pass

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        raise self

    def exception(self, timeout: float | None = None) -> BaseException:
        self._wait(timeout)
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return None

    def add_done_callback(self, fn: Callable) -> None:
        if self._inner is None:
            fn(self)
        else:
            self._inner.add_done_callback(lambda _: fn(self))


class ChaosInterceptor(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, policy: ChaosPolicy) -> None:
        self.policy = policy

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        method = details.method.strip("/").replace("ember.", "", 1).replace("/", ".")
        verdict = self.policy.decide(method)
        if verdict == REQUEST:
            return InjectedFailure(method, "request")
        outcome = continuation(details, request)
        if verdict == RESPONSE:
            if outcome.done() and outcome.exception() is not None:
                return outcome  # it failed for real anyway
            return InjectedFailure(method, "reply", outcome)
        return outcome


_policy: ChaosPolicy | None = None
_policy_spec: str | None = None
_policy_lock = threading.Lock()


def policy_from_env() -> ChaosPolicy | None:
    """The process-wide policy for the current value of the variable (None when unset)."""
    global _policy, _policy_spec
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    with _policy_lock:
        if spec != _policy_spec:
            _policy, _policy_spec = ChaosPolicy(parse(spec)), spec
        return _policy


def wrap(channel: grpc.Channel) -> grpc.Channel:
    """``channel``, intercepted when failures are configured."""
    policy = policy_from_env()
    if policy is None:
        return channel
    return grpc.intercept_channel(channel, ChaosInterceptor(policy))


def reset() -> None:
    """Forget the process-wide policy and its failure counts (tests start afresh)."""
    global _policy, _policy_spec
    with _policy_lock:
        _policy, _policy_spec = None, None
