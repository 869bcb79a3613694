"""Folding identical worker output from many processes into one line (pure).

A hundred tasks that each print ``loading model...`` should not print it a
hundred times on the driver. As in Ray, the first occurrence of a line is shown
at once; later occurrences of the same line *from other processes* within the
aggregation window are counted instead of printed, and when the window closes
the last of them is shown once with ``[repeated Nx across cluster]``.

Lines "the same" ignore words that contain digits (so ``step 3 took 0.2s`` from
one worker matches ``step 7 took 0.4s`` from another), as Ray does. Repeats
from a single process are never folded: a loop's own output stays visible.

Configured from the environment (Ray's names with ``EMBER_``):
``EMBER_DEDUP_LOGS=0`` turns folding off; ``EMBER_DEDUP_LOGS_AGG_WINDOW_S``
(default 5); ``EMBER_DEDUP_LOGS_ALLOW_REGEX`` (lines matching are never
folded); ``EMBER_DEDUP_LOGS_SKIP_REGEX`` (lines matching are dropped).

>>> d = LogDeduplicator(window_s=5)
>>> d.feed(LogRecord("hello", "f", pid=1), now=0.0)[0].repeated
0
>>> d.feed(LogRecord("hello", "f", pid=2), now=1.0)   # folded: printed later
[]
>>> [(e.record.pid, e.repeated) for e in d.flush(now=5.0)]
[(2, 1)]
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_WINDOW_S = 5.0
TIP = ("(ember) Tip: identical lines from several workers are shown once with a count; "
       "set EMBER_DEDUP_LOGS=0 to see every line.")


@dataclass(frozen=True)
class LogRecord:
    """One line of worker output and where it came from (``ip`` "" = this machine)."""

    line: str
    task_name: str = ""
    pid: int = 0
    ip: str = ""
    is_err: bool = False

    @property
    def source(self) -> tuple[str, int]:
        return (self.ip, self.pid)


@dataclass(frozen=True)
class Emit:
    """A line to print now; ``repeated`` > 0: it stands for that many folded copies."""

    record: LogRecord
    repeated: int = 0


@dataclass
class _Window:
    opened: float
    order: int
    sources: set = field(default_factory=set)
    count: int = 0
    last: LogRecord | None = None


@dataclass(frozen=True)
class DedupConfig:
    enabled: bool = True
    window_s: float = DEFAULT_WINDOW_S
    allow_regex: str | None = None
    skip_regex: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DedupConfig":
        """Read the ``EMBER_DEDUP_LOGS*`` variables; a bad value is a ValueError naming it."""
        env = os.environ if env is None else env
        enabled = env.get("EMBER_DEDUP_LOGS", "1").strip().lower() not in (
            "0", "false", "no", "off")
        raw = env.get("EMBER_DEDUP_LOGS_AGG_WINDOW_S", str(DEFAULT_WINDOW_S))
        try:
            window = float(raw)
        except ValueError:
            window = -1.0
        if not window >= 0:
            raise ValueError(f"EMBER_DEDUP_LOGS_AGG_WINDOW_S={raw!r} is not a number of seconds "
                             ">= 0: set it to e.g. 5")
        allow = env.get("EMBER_DEDUP_LOGS_ALLOW_REGEX") or None
        skip = env.get("EMBER_DEDUP_LOGS_SKIP_REGEX") or None
        for name, pattern in (("ALLOW", allow), ("SKIP", skip)):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"EMBER_DEDUP_LOGS_{name}_REGEX={pattern!r} is not a "
                                     f"valid regular expression ({e}): fix or unset it") from None
        return cls(enabled, window, allow, skip)


_HAS_DIGIT = re.compile(r"\d")


def canonical(line: str) -> str:
    """The form two lines must share to be folded: words with digits dropped."""
    return " ".join(w for w in line.split() if not _HAS_DIGIT.search(w))


class LogDeduplicator:
    """Feed lines as they arrive, call ``flush`` now and then; print what both return."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, allow_regex: str | None = None,
                 skip_regex: str | None = None) -> None:
        self.window_s = window_s
        self._allow = re.compile(allow_regex) if allow_regex else None
        self._skip = re.compile(skip_regex) if skip_regex else None
        self._open: dict[tuple[bool, str], _Window] = {}
        self._order = 0
        self.folded_any = False      # the printer shows a one-time tip after the first fold

    @classmethod
    def from_config(cls, config: DedupConfig) -> "LogDeduplicator":
        return cls(config.window_s, config.allow_regex, config.skip_regex)

    def feed(self, record: LogRecord, now: float) -> list[Emit]:
        """What to print for this line now (possibly nothing: it was folded)."""
        if self._skip is not None and self._skip.search(record.line):
            return []
        key_text = canonical(record.line)
        if not key_text or (self._allow is not None and self._allow.search(record.line)):
            return [Emit(record)]
        key = (record.is_err, key_text)
        out: list[Emit] = []
        window = self._open.get(key)
        if window is not None and now - window.opened >= self.window_s:
            out.extend(self._close(key))
            window = None
        if window is None:
            self._order += 1
            self._open[key] = _Window(now, self._order, {record.source})
            out.append(Emit(record))
            return out
        window.sources.add(record.source)
        if len(window.sources) == 1:
            out.append(Emit(record))       # the same process again: its own loop, not folded
            return out
        window.count += 1
        window.last = record
        self.folded_any = True
        return out

    def flush(self, now: float, force: bool = False) -> list[Emit]:
        """Close the windows that are over (all of them with ``force``, at shutdown)."""
        due = [k for k, w in self._open.items() if force or now - w.opened >= self.window_s]
        due.sort(key=lambda k: self._open[k].order)
        out: list[Emit] = []
        for key in due:
            out.extend(self._close(key))
        return out

    def next_deadline(self) -> float | None:
        """When the earliest window closes (None: nothing is open)."""
        if not self._open:
            return None
        return min(w.opened for w in self._open.values()) + self.window_s

    def _close(self, key: tuple[bool, str]) -> list[Emit]:
        window = self._open.pop(key)
        if window.count and window.last is not None:
            return [Emit(window.last, window.count)]
        return []


def prefix(record: LogRecord) -> str:
    """Ray's prefix: ``(task_name pid=123)``, with ``, ip=...`` for another machine."""
    where = f"pid={record.pid}" + (f", ip={record.ip}" if record.ip else "")
    return f"({record.task_name} {where})" if record.task_name else f"({where})"


def format_emit(emit: Emit) -> str:
    """The text the driver prints for one emitted line."""
    text = f"{prefix(emit.record)} {emit.record.line}"
    if emit.repeated:
        text += f" [repeated {emit.repeated}x across cluster]"
    return text
