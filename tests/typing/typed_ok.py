"""A small typed Ember program that must pass mypy (see check_typing.sh).

Every ``assert_type`` pins what a type checker infers for the public API:
``ember.get(f.remote(x))`` has ``f``'s return type, ``.remote()`` takes the
declared types or ``ObjectRef``s to them, ``.options()`` keeps the signature.

The file also runs, so the types it claims are checked against the runtime:
``python tests/typing/typed_ok.py`` starts a local cluster, and
tests/core/test_typing.py calls :func:`run` on the test cluster.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import ember
from ember import ObjectRef
from ember.actor import ActorClass, ActorHandle

if TYPE_CHECKING:
    # typing.assert_type is 3.11+; the config checks as Python 3.10.
    from typing_extensions import assert_type
else:
    def assert_type(value, _type):  # the test env need not have typing_extensions
        return value

T = TypeVar("T")


@ember.remote
def square(x: int) -> int:
    return x * x


@ember.remote
def describe(x: int, label: str = "n", *, upper: bool = False) -> str:
    text = f"{label}={x}"
    return text.upper() if upper else text


@ember.remote(num_cpus=1, max_retries=0)
def add(a: int, b: int) -> int:
    return a + b


@ember.remote
def total(*xs: float) -> float:
    return sum(xs)


@ember.remote
def first(items: list[T]) -> T:
    return items[0]


@ember.remote
def nothing() -> None:
    return None


async def awaited() -> int:
    return await square.remote(6)


class Tally:
    def __init__(self, start: int) -> None:
        self.n = start

    def add(self, k: int) -> int:
        self.n += k
        return self.n


# mypy ignores what a class decorator returns (python/mypy#3135), so typed code
# wraps the class with a call instead of `@ember.remote` to get ActorClass[Tally].
TallyActor = ember.remote(max_restarts=1)(Tally)


def run() -> None:
    """The calls above, on an already initialized cluster."""
    # A ref's type comes from the function; get() unwraps it.
    ref = square.remote(3)
    assert_type(ref, ObjectRef[int])
    value = ember.get(ref)
    assert_type(value, int)
    assert value == 9
    assert_type(ember.get(ref, timeout=30), int)

    # Refs are accepted wherever a value is (the task gets the value).
    summed = add.remote(square.remote(2), ember.put(1))
    assert_type(summed, ObjectRef[int])
    assert ember.get(summed) == 5
    assert ember.get(total.remote(1.0, ember.put(2.0), 3)) == 6.0

    # Keywords, defaults and keyword-only parameters, mixed with refs.
    assert_type(describe.remote(4), ObjectRef[str])
    assert ember.get(describe.remote(x=4, label="four")) == "four=4"
    assert ember.get(describe.remote(ember.put(4), upper=True)) == "N=4"
    assert ember.get(describe.remote(4, ember.put("k"), upper=False)) == "k=4"

    # .options() keeps the signature and return type.
    optioned = add.options(num_cpus=1, name="add_again").remote(1, 2)
    assert_type(optioned, ObjectRef[int])
    assert ember.get(optioned) == 3

    # Lists (and tuples) of refs give lists of values.
    squares = ember.get([square.remote(i) for i in range(4)])
    assert_type(squares, list[int])
    assert squares == [0, 1, 4, 9]
    assert_type(ember.get((ref, summed)), list[int])
    mixed = ember.get([ref, describe.remote(1)])
    assert_type(mixed, list[Any])
    assert mixed == [9, "n=1"]

    # put/wait.
    stored = ember.put({"a": 1})
    assert_type(stored, ObjectRef[dict[str, int]])
    assert ember.get(stored) == {"a": 1}
    ready, pending = ember.wait([ref, summed], num_returns=2, timeout=30)
    assert_type(ready, list[ObjectRef[Any]])
    assert len(ready) == 2 and pending == []

    # Generic functions, no-argument functions, await.
    picked = first.remote(["x", "y"])
    assert_type(picked, ObjectRef[str])
    assert ember.get(picked) == "x"
    assert_type(nothing.remote(), ObjectRef[None])
    assert ember.get(nothing.remote()) is None
    assert asyncio.run(awaited()) == 36

    # Actors: the class and handle keep the user's class as their type parameter.
    assert_type(TallyActor, ActorClass[Tally])
    tally = TallyActor.options(name="typed-tally").remote(1)
    assert_type(tally, ActorHandle[Tally])
    assert ember.get(tally.add.remote(2)) == 3
    ember.kill(tally)


def main() -> None:
    ember.init(num_cpus=2)
    try:
        run()
    finally:
        ember.shutdown()
    print("typed_ok: all calls behaved as typed")


if __name__ == "__main__":
    main()
