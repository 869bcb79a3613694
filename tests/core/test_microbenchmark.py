"""`ember microbenchmark` (ember/_private/microbenchmark/): row selection, the
comparison table, the runner's handling of rows that fail, hang or crash (with a
fake framework, no cluster), and one real run through the command line."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from ember._private.microbenchmark import probe, report, runner
from ember._private.microbenchmark.rows import EXTRA_KEYS, MICRO_KEYS, ROWS, by_key, select

RAY_PERF_ROWS = [  # ray/_private/ray_perf.py (Ray 2.60), in its order
    "single client get calls (Plasma Store)", "single client put calls (Plasma Store)",
    "multi client put calls (Plasma Store)", "single client put gigabytes",
    "single client tasks and get batch", "multi client put gigabytes",
    "single client get object containing 10k refs", "single client wait 1k refs",
    "single client tasks sync", "single client tasks async", "multi client tasks async",
    "1:1 actor calls sync", "1:1 actor calls async", "1:1 actor calls concurrent",
    "1:n actor calls async", "n:n actor calls async", "n:n actor calls with arg async",
    "1:1 async-actor calls sync", "1:1 async-actor calls async",
    "1:1 async-actor calls with args async", "1:n async-actor calls async",
    "n:n async-actor calls async", "placement group create/removal",
]


def test_rows_are_ray_microbenchmark_rows_under_rays_names():
    assert [by_key(k).name for k in MICRO_KEYS] == RAY_PERF_ROWS
    assert set(EXTRA_KEYS) == {"actor-creation", "import-first-result", "idle-processes",
                               "idle-memory", "transfer-1gb"}


def test_issue_targets():
    assert {k for k in MICRO_KEYS if by_key(k).target == 3.0} == {
        "tasks-sync", "tasks-async", "actor-sync", "actor-async"}
    assert all(by_key(k).target >= 1.0 and by_key(k).better == "higher" for k in MICRO_KEYS)
    assert by_key("import-first-result").target == pytest.approx(1 / 15)
    assert by_key("idle-memory").target == pytest.approx(1 / 3)


def test_every_row_has_probe_code():
    class Handle:
        def __getattr__(self, name):
            return self

        def remote(self, *a, **k):
            return self

        def options(self, **k):
            return self

    class FakeFw:
        def __getattr__(self, name):
            return lambda *a, **k: Handle()

    probe.CFG.update(module="ember", small=True)
    rows_phase = [r.key for r in ROWS if r.phase == "rows" and r.key != "actor-creation"]
    d = {name: Handle() for name in ("small_value", "Actor", "AsyncActor", "Client",
                                     "create_object_containing_ref", "do_put_small",
                                     "do_put", "work")}
    for key in rows_phase:
        if key == "put-gigabytes":
            continue        # allocates its 800 MB array at setup
        fn, mult, actors = probe.setup(FakeFw(), d, key)
        assert callable(fn) and mult > 0, key
    with pytest.raises(KeyError):
        probe.setup(FakeFw(), d, "no-such-row")


def test_select():
    assert select(None, ["tasks-sync"]) == ["tasks-sync"]
    assert select("micro", []) == MICRO_KEYS
    assert select("tasks-sync,single client tasks sync,extras", []) == ["tasks-sync",
                                                                         *EXTRA_KEYS]
    with pytest.raises(ValueError, match="unknown row 'nope'.*tasks-sync"):
        select("nope", [])


def test_table_ratios_and_targets():
    ember = {"tasks-sync": {"mean": 600.0, "std": 1.0, "runs": [600.0]},
             "import-first-result": {"mean": 0.5, "std": 0.0, "runs": [0.5]},
             "idle-processes": {"mean": 6, "std": 0, "runs": [6]},
             "actor-sync": {"error": "TypeError: nope | bad"}}
    ray = {"tasks-sync": {"mean": 300.0, "std": 1.0, "runs": [300.0]},
           "import-first-result": {"mean": 10.0, "std": 0.0, "runs": [10.0]},
           "idle-processes": {"mean": 10, "std": 0, "runs": [10]},
           "actor-sync": {"mean": 100.0, "std": 0.0, "runs": [100.0]}}
    rows = {r["key"]: r for r in report.table(ember, ray, list(ember))}
    assert rows["tasks-sync"]["ratio"] == 2.0 and rows["tasks-sync"]["met"] == "NO"
    assert rows["tasks-sync"]["target"] == ">= 3x"
    assert rows["import-first-result"]["target"] == "<= 1/15"
    assert rows["import-first-result"]["met"] == "yes"           # 0.05 <= 1/15
    assert rows["idle-processes"]["met"] == "-"
    assert rows["actor-sync"]["ratio"] is None and rows["actor-sync"]["met"] == "n/a"
    assert rows["actor-sync"]["ember"].startswith("error: TypeError")
    text = report.render(list(rows.values()), with_ray=True)
    assert "| single client tasks sync" in text and "2.00" in text


# A framework that runs everything in the driver; FAKEFW_TASK says what a
# get of small_value's result does: return, raise, hang or kill the interpreter.
_FAKE = textwrap.dedent('''
    import os, time
    __version__ = "fake"

    class TaskRef:
        def __init__(self, name):
            self.name = name

    class Remote:
        def __init__(self, target):
            self.target = target
        def options(self, **kw):
            return self
        def remote(self, *a, **kw):
            if isinstance(self.target, type):
                return Instance(self.target(*a, **kw))
            self.target(*a, **kw)
            return TaskRef(self.target.__name__)

    class Instance:
        def __init__(self, obj):
            self.obj = obj
        def __getattr__(self, name):
            return Remote(getattr(self.obj, name))

    def remote(*args, **kw):
        if args and callable(args[0]):
            return Remote(args[0])
        return Remote

    def init(**kw): pass
    def shutdown(): pass
    def kill(actor): pass
    def put(value): return ("put", value)

    def get(x, timeout=None):
        if isinstance(x, list):
            return [get(v) for v in x]
        if isinstance(x, TaskRef) and x.name == "small_value":
            mode = os.environ.get("FAKEFW_TASK", "ok")
            if mode == "raise":
                raise RuntimeError("boom")
            if mode == "hang":
                time.sleep(3600)
            if mode == "crash":
                os._exit(3)
        return 1 if isinstance(x, TaskRef) else x[1]
''')


@pytest.fixture
def fake_fw(tmp_path, monkeypatch):
    (tmp_path / "fakefw.py").write_text(_FAKE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return monkeypatch


def _fake_run(keys, mode, fake_fw, row_timeout=60.0):
    fake_fw.setenv("FAKEFW_TASK", mode)
    settings = runner.Settings.make(quick=True, num_cpus=2, warmup=0.05, duration=0.1,
                                    row_timeout=row_timeout, idle_s=0.0)
    lines: list[str] = []
    out = runner.run_framework(sys.executable, "fakefw", keys, settings, log=lines.append)
    return out["results"], lines


def test_runner_measures_rows(fake_fw):
    results, _ = _fake_run(["put-calls", "get-calls", "idle-processes"], "ok", fake_fw)
    assert results["put-calls"]["mean"] > 0 and results["get-calls"]["mean"] > 0
    # The probe counted itself (the fake starts no cluster).
    assert results["idle-processes"]["mean"] == 1


def test_runner_reports_a_raising_row_and_goes_on(fake_fw):
    results, lines = _fake_run(["put-calls", "tasks-sync", "get-calls"], "raise", fake_fw)
    assert results["tasks-sync"]["error"] == "RuntimeError: boom"
    assert results["put-calls"]["mean"] > 0 and results["get-calls"]["mean"] > 0
    assert any("single client tasks sync: error: RuntimeError: boom" in ln for ln in lines)


def test_runner_survives_a_crashed_interpreter(fake_fw):
    results, _ = _fake_run(["put-calls", "tasks-sync", "get-calls"], "crash", fake_fw)
    assert results["tasks-sync"]["error"].startswith("interpreter exited (rc 3)")
    assert results["put-calls"]["mean"] > 0
    assert results["get-calls"]["mean"] > 0        # in a fresh interpreter


def test_runner_times_out_a_hung_row(fake_fw):
    results, _ = _fake_run(["tasks-sync", "get-calls"], "hang", fake_fw, row_timeout=3.0)
    assert results["tasks-sync"]["error"].startswith("timed out")
    assert results["get-calls"]["mean"] > 0


def test_precompile_byte_compiles_the_framework_package(tmp_path, monkeypatch):
    """Start-up rows must not time the compiler: the package is compiled first, even
    where PYTHONDONTWRITEBYTECODE keeps imports from writing .pyc files."""
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "sub" / "mod.py").write_text("Y = 2\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    lines: list[str] = []
    runner.precompile(sys.executable, "fakepkg", log=lines.append)
    assert lines == []
    assert list((pkg / "__pycache__").glob("__init__.*.pyc"))
    assert list((pkg / "sub" / "__pycache__").glob("mod.*.pyc"))
    runner.precompile(sys.executable, "no_such_module_here", log=lines.append)
    assert lines and "byte-compiling the package first failed" in lines[0]


def test_command_runs_ember_rows(tmp_path):
    """A real run: one task row and the start-up metrics, through `ember microbenchmark`."""
    from ember._private.cli import cli

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["microbenchmark", "--rows",
                                      "tasks-sync,import-first-result,idle-memory",
                                      "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| single client tasks sync" in result.output
    data = json.loads(out.read_text())
    res = data["ember"]["results"]
    assert res["tasks-sync"]["mean"] > 0, res
    assert 0 < res["import-first-result"]["mean"] < 120
    assert res["idle-memory"]["mean"] > 10          # MB: driver + cluster processes
    assert [r["key"] for r in data["table"]] == ["tasks-sync", "import-first-result",
                                                 "idle-memory"]
