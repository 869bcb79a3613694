"""Distributed reference counting as a pure state machine.

Each process keeps one ``ReferenceCounter``. An object stays alive while any of
these is non-zero, anywhere:

- ``local``: live ``ObjectRef`` instances in this process;
- ``submitted``: pending tasks this process submitted with the ref as an argument;
- ``contained``: live objects owned here whose value holds the ref;
- ``borrowers``: other processes that hold the ref (tracked by the owner only).

A borrower keeps its own counts and, when they reach zero, tells the owner
(``SendRemoveBorrow``). The owner frees the value when its counts reach zero and
no borrower remains (``FreeObject``). Methods return action lists; the caller
(core_worker.py) performs them. Tested without processes in
tests/core/test_reference_counter.py.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FreeObject:
    object_id: bytes
    contained: tuple[bytes, ...]


@dataclass(frozen=True)
class SendRemoveBorrow:
    object_id: bytes
    owner: str


@dataclass
class _Ref:
    owned: bool
    owner: str  # owner address "ip:port" (empty for owned refs)
    local: int = 0
    submitted: int = 0
    contained: int = 0
    # A set once the first borrower comes; until then a shared empty frozenset (one
    # tracked object less per object in flight for the garbage collector).
    borrowers: set[str] | frozenset[str] = frozenset()
    # For owned objects: refs inside this object's value, released when it dies.
    inner: tuple[bytes, ...] = ()

    def alive(self) -> bool:
        return bool(self.local or self.submitted or self.contained or self.borrowers)


def _drop_borrower(ref: _Ref, borrower: str) -> bool:
    borrowers = ref.borrowers
    if isinstance(borrowers, set) and borrower in borrowers:
        borrowers.discard(borrower)
        return True
    return False


class ReferenceCounter:
    def __init__(self) -> None:
        self._refs: dict[bytes, _Ref] = {}

    # ------------------------------------------------------------ registration
    def add_owned(self, object_id: bytes, inner: tuple[bytes, ...] = ()) -> None:
        """Register an object this process owns (a put or a task return)."""
        ref = self._refs.get(object_id)
        if ref is None:
            self._refs[object_id] = _Ref(True, "", inner=inner)
        else:
            ref.owned = True
            ref.inner = inner
        for inner_id in inner:
            self._entry(inner_id).contained += 1

    def set_inner(self, object_id: bytes, inner: tuple[bytes, ...], owners: dict[bytes, str]) -> list:
        """Record refs contained in an owned object whose value arrived later (a task return)."""
        ref = self._refs.get(object_id)
        if ref is None:
            return []
        ref.inner = inner
        for inner_id in inner:
            entry = self._refs.get(inner_id)
            if entry is None:
                entry = self._refs[inner_id] = _Ref(False, owners.get(inner_id, ""))
            entry.contained += 1
        return []

    def add_borrowed(self, object_id: bytes, owner: str) -> bool:
        """Note a ref owned elsewhere. Returns True when the owner must be told."""
        if object_id in self._refs:
            return False
        self._refs[object_id] = _Ref(False, owner)
        return True

    # ------------------------------------------------------------ counts
    def add_local(self, object_id: bytes) -> None:
        self._entry(object_id).local += 1

    def remove_local(self, object_id: bytes) -> list:
        ref = self._refs.get(object_id)
        if ref is None:
            return []
        ref.local -= 1
        return self._maybe_release(object_id, ref)

    def add_submitted(self, object_ids: list[bytes]) -> None:
        for object_id in object_ids:
            self._entry(object_id).submitted += 1

    def remove_submitted(self, object_ids: list[bytes]) -> list:
        actions: list = []
        for object_id in object_ids:
            ref = self._refs.get(object_id)
            if ref is not None:
                ref.submitted -= 1
                actions += self._maybe_release(object_id, ref)
        return actions

    def add_borrower(self, object_id: bytes, borrower: str) -> bool:
        """Returns False when the object is already gone (the borrower is too late)."""
        ref = self._refs.get(object_id)
        if ref is None or not ref.owned:
            return False
        if not isinstance(ref.borrowers, set):
            ref.borrowers = set()
        ref.borrowers.add(borrower)
        return True

    def remove_borrower(self, object_id: bytes, borrower: str) -> list:
        ref = self._refs.get(object_id)
        if ref is None:
            return []
        _drop_borrower(ref, borrower)
        return self._maybe_release(object_id, ref)

    def borrower_died(self, borrower: str) -> list:
        actions: list = []
        for object_id, ref in list(self._refs.items()):
            if _drop_borrower(ref, borrower):
                actions += self._maybe_release(object_id, ref)
        return actions

    # ------------------------------------------------------------ queries
    def has(self, object_id: bytes) -> bool:
        return object_id in self._refs

    def is_owned(self, object_id: bytes) -> bool:
        ref = self._refs.get(object_id)
        return ref is not None and ref.owned

    def counts(self, object_id: bytes) -> dict | None:
        ref = self._refs.get(object_id)
        if ref is None:
            return None
        return {"local": ref.local, "submitted": ref.submitted, "contained": ref.contained,
                "borrowers": set(ref.borrowers), "owned": ref.owned}

    def snapshot(self, limit: int = 0) -> list[tuple[bytes, bool, str, int, int, int, int]]:
        """(object id, owned, owner, local, submitted, contained, borrowers) per ref
        held here, at most ``limit`` (0: all): what the state API lists."""
        out = []
        for object_id, ref in self._refs.items():
            out.append((object_id, ref.owned, ref.owner, ref.local, ref.submitted,
                        ref.contained, len(ref.borrowers)))
            if limit and len(out) >= limit:
                break
        return out

    def __len__(self) -> int:
        return len(self._refs)

    # ------------------------------------------------------------ internals
    def _entry(self, object_id: bytes) -> _Ref:
        ref = self._refs.get(object_id)
        if ref is None:
            # A count on an id we have not registered: treat as owned-here
            # placeholder until add_owned/add_borrowed says otherwise.
            ref = self._refs[object_id] = _Ref(True, "")
        return ref

    def _maybe_release(self, object_id: bytes, ref: _Ref) -> list:
        if ref.alive():
            return []
        del self._refs[object_id]
        if not ref.owned:
            return [SendRemoveBorrow(object_id, ref.owner)] if ref.owner else []
        actions: list = [FreeObject(object_id, ref.inner)]
        for inner_id in ref.inner:
            inner = self._refs.get(inner_id)
            if inner is not None:
                inner.contained -= 1
                actions += self._maybe_release(inner_id, inner)
        return actions
