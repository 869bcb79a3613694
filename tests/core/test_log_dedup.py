"""log_dedup: folding identical lines from many workers (pure, no processes)."""
from __future__ import annotations

import pytest

from ember._private.log_dedup import (DedupConfig, Emit, LogDeduplicator, LogRecord, canonical,
                                      format_emit, prefix)


def rec(line: str, pid: int, task: str = "f", is_err: bool = False, ip: str = "") -> LogRecord:
    return LogRecord(line, task, pid, ip, is_err)


def test_first_line_shown_at_once():
    d = LogDeduplicator(window_s=5)
    assert d.feed(rec("hello", 1), now=0.0) == [Emit(rec("hello", 1))]


def test_same_line_from_other_processes_folded_and_counted_when_window_closes():
    d = LogDeduplicator(window_s=5)
    d.feed(rec("hello", 1), now=0.0)
    assert d.feed(rec("hello", 2), now=1.0) == []
    assert d.feed(rec("hello", 3), now=2.0) == []
    assert d.flush(now=4.9) == []                      # window still open
    assert d.flush(now=5.0) == [Emit(rec("hello", 3), repeated=2)]   # the last one, counted
    assert d.flush(now=99.0) == []                     # said once
    assert d.folded_any


def test_repeats_from_one_process_are_not_folded():
    d = LogDeduplicator(window_s=5)
    got = [d.feed(rec("tick", 1), now=float(t)) for t in range(3)]
    assert got == [[Emit(rec("tick", 1))]] * 3
    assert d.flush(now=10.0) == []
    assert not d.folded_any


def test_words_with_digits_ignored_when_comparing():
    assert canonical("step 3 took 0.25s") == canonical("step 17 took 1.5s") == "step took"
    d = LogDeduplicator(window_s=5)
    d.feed(rec("step 3 took 0.25s", 1), now=0.0)
    assert d.feed(rec("step 17 took 1.5s", 2), now=0.1) == []
    assert d.flush(now=5.0) == [Emit(rec("step 17 took 1.5s", 2), repeated=1)]


def test_line_after_window_is_shown_at_once_again():
    d = LogDeduplicator(window_s=5)
    d.feed(rec("x", 1), now=0.0)
    d.feed(rec("x", 2), now=1.0)
    # The window closed without a flush: feeding closes it (count first), then shows the line.
    assert d.feed(rec("x", 3), now=6.0) == [Emit(rec("x", 2), repeated=1), Emit(rec("x", 3))]


def test_different_lines_and_streams_are_independent():
    d = LogDeduplicator(window_s=5)
    assert d.feed(rec("a", 1), now=0.0) == [Emit(rec("a", 1))]
    assert d.feed(rec("b", 2), now=0.0) == [Emit(rec("b", 2))]
    assert d.feed(rec("a", 3, is_err=True), now=0.0) == [Emit(rec("a", 3, is_err=True))]


def test_flush_order_follows_first_appearance_and_force_closes_everything():
    d = LogDeduplicator(window_s=5)
    for line in ("first", "second"):
        d.feed(rec(line, 1), now=0.0)
        d.feed(rec(line, 2), now=0.5)
    assert [e.record.line for e in d.flush(now=1.0, force=True)] == ["first", "second"]
    assert d.next_deadline() is None


def test_next_deadline():
    d = LogDeduplicator(window_s=5)
    assert d.next_deadline() is None
    d.feed(rec("a", 1), now=2.0)
    assert d.next_deadline() == 7.0


def test_blank_lines_never_folded():
    d = LogDeduplicator(window_s=5)
    d.feed(rec("", 1), now=0.0)
    assert d.feed(rec("", 2), now=0.1) == [Emit(rec("", 2))]
    assert d.feed(rec("42", 3), now=0.1) == [Emit(rec("42", 3))]   # only digits: nothing left


def test_allow_and_skip_regex():
    d = LogDeduplicator(window_s=5, allow_regex="^keep", skip_regex="noise")
    d.feed(rec("keep me", 1), now=0.0)
    assert d.feed(rec("keep me", 2), now=0.1) == [Emit(rec("keep me", 2))]
    assert d.feed(rec("some noise here", 1), now=0.1) == []
    assert d.flush(now=10.0) == []


def test_prefix_and_format():
    assert prefix(rec("x", 12, task="train")) == "(train pid=12)"
    assert prefix(rec("x", 12, task="")) == "(pid=12)"
    assert prefix(rec("x", 12, task="A", ip="10.0.0.2")) == "(A pid=12, ip=10.0.0.2)"
    assert format_emit(Emit(rec("hi", 5), repeated=3)) == \
        "(f pid=5) hi [repeated 3x across cluster]"
    assert format_emit(Emit(rec("hi", 5))) == "(f pid=5) hi"


def test_config_from_env():
    assert DedupConfig.from_env({}) == DedupConfig()
    cfg = DedupConfig.from_env({"EMBER_DEDUP_LOGS": "0", "EMBER_DEDUP_LOGS_AGG_WINDOW_S": "1.5",
                                "EMBER_DEDUP_LOGS_ALLOW_REGEX": "a+"})
    assert (cfg.enabled, cfg.window_s, cfg.allow_regex) == (False, 1.5, "a+")
    with pytest.raises(ValueError, match="EMBER_DEDUP_LOGS_AGG_WINDOW_S"):
        DedupConfig.from_env({"EMBER_DEDUP_LOGS_AGG_WINDOW_S": "soon"})
    with pytest.raises(ValueError, match="EMBER_DEDUP_LOGS_SKIP_REGEX"):
        DedupConfig.from_env({"EMBER_DEDUP_LOGS_SKIP_REGEX": "("})
