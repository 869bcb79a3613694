"""Deliberate type errors that mypy must reject (run by check_typing.sh).

A line ending in a marker comment -- hash, ``E:``, then mypy error code(s),
as in ``square.remote("3")`` below -- must get an error with that code, and no
other line may get any error. This module is never executed.
"""
from __future__ import annotations

import ember
from ember import ObjectRef


@ember.remote
def square(x: int) -> int:
    return x * x


@ember.remote
def describe(x: int, label: str = "n", *, upper: bool = False) -> str:
    return label


@ember.remote(num_cpus=2)
def add(a: int, b: int) -> int:
    return a + b


def misuse() -> None:
    ok = square.remote(ember.put(1))  # the one line here that is fine

    # Arguments are checked against the function's signature...
    square.remote("3")  # E: call-overload
    square.remote()  # E: call-overload
    square.remote(1, 2)  # E: call-overload
    describe.remote(1, colour="red")  # E: call-overload
    describe.remote(1, "a", True)  # E: call-overload
    # ...including through ObjectRefs (mypy infers put()'s type from the context)
    square.remote(ember.put("3"))  # E: arg-type
    add.remote(1)  # E: call-overload
    # ...and after .options().
    add.options(num_cpus=1).remote("a", 1)  # E: call-overload

    # A remote function is not called directly.
    square(3)  # E: operator

    # get() returns the function's return type, not Any...
    text: str = ember.get(ok)  # E: assignment
    ember.get([square.remote(i) for i in range(3)])[0].upper()  # E: attr-defined
    # ...and takes refs only.
    ember.get(3)  # E: call-overload
    ember.wait([1, 2])  # E: list-item

    # A ref is not its value.
    ref: ObjectRef[int] = ember.put(1)
    ref + 1  # E: operator
    number: int = square.remote(2)  # E: assignment
    wrong: ObjectRef[str] = square.remote(2)  # E: assignment
