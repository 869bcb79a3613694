"""GPU detection and accelerator-type naming."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from ember._private import accelerators
from ember._private.accelerators import (
    accelerator_resource_name,
    accelerator_type_from_name,
    detect_gpus,
    parse_nvidia_smi_output,
    parse_proc_information,
)

PROC_H100 = """Model: \t\t NVIDIA H100 80GB HBM3
IRQ:   \t\t 0
GPU UUID: \t GPU-6d1a3c8e-0000-0000-0000-000000000000
Video BIOS: \t 96.00.74.00.01
Bus Type: \t PCIe
DMA Size: \t 52 bits
DMA Mask: \t 0xfffffffffffff
Bus Location: \t 0000:18:00.0
Device Minor: \t 0
GPU Excluded:\t No
"""


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("Tesla V100-SXM2-16GB", "V100"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("Tesla T4", "T4"),
    ("NVIDIA GeForce RTX 4090", "RTX"),
    ("NVIDIA GH200 480GB", "GH200"),
])
def test_known_gpu_names_map_to_family(name: str, expected: str) -> None:
    assert accelerator_type_from_name(name) == expected


def test_unknown_gpu_name_falls_back_to_last_word_alnum_only() -> None:
    assert accelerator_type_from_name("Acme Turbo-X9 (rev.2)") == "rev2"
    assert accelerator_type_from_name("Acme Zeta9") == "Zeta9"


def test_name_without_alnum_maps_to_empty() -> None:
    assert accelerator_type_from_name("--- ()") == ""


def test_accelerator_resource_name() -> None:
    assert accelerator_resource_name("H100") == "accelerator_type:H100"


def test_parse_proc_information_reads_model_line() -> None:
    assert parse_proc_information(PROC_H100) == "NVIDIA H100 80GB HBM3"


def test_parse_proc_information_missing_or_empty_model() -> None:
    assert parse_proc_information("IRQ: 5\nBus Type: PCIe\n") is None
    assert parse_proc_information("Model: \t \n") is None
    assert parse_proc_information("") is None


def test_parse_nvidia_smi_output_skips_malformed_lines() -> None:
    text = "0, NVIDIA H100 80GB HBM3\n1, NVIDIA H100 80GB HBM3\ngarbage\n\n"
    assert parse_nvidia_smi_output(text) == [
        ("0", "NVIDIA H100 80GB HBM3"), ("1", "NVIDIA H100 80GB HBM3")]


# ---------------------------------------------------------------- detect_gpus

@pytest.fixture
def no_driver(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR", str(tmp_path / "absent"))
    monkeypatch.setattr(accelerators.shutil, "which", lambda name: None)

    def no_spawn(*args, **kwargs):
        raise AssertionError("detection must not spawn a process without a driver")
    monkeypatch.setattr(accelerators.subprocess, "run", no_spawn)


def _fake_proc(tmp_path, models: list[str | None]) -> str:
    root = tmp_path / "gpus"
    root.mkdir()
    # Created out of order to check that ids follow PCI bus order, not listdir order.
    buses = [f"0000:{0x18 + 0x20 * i:02x}:00.0" for i in range(len(models))]
    for bus, model in reversed(list(zip(buses, models))):
        d = root / bus
        d.mkdir()
        if model is not None:
            (d / "information").write_text(PROC_H100.replace("NVIDIA H100 80GB HBM3", model))
    (root / "stray-file").write_text("not a gpu dir")
    return str(root)


def test_no_driver_returns_nothing(no_driver) -> None:
    assert detect_gpus() == ([], None)


def test_no_driver_fast_path_under_1ms(no_driver) -> None:
    detect_gpus()  # warm imports and caches
    start = time.perf_counter()
    for _ in range(100):
        detect_gpus()
    assert (time.perf_counter() - start) / 100 < 1e-3


def test_proc_driver_counts_dirs_and_reads_model(no_driver, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR",
                        _fake_proc(tmp_path, ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"]))
    assert detect_gpus() == (["0", "1"], "A100")


def test_proc_driver_uses_first_gpu_model_in_bus_order(no_driver, monkeypatch, tmp_path) -> None:
    root = _fake_proc(tmp_path, ["NVIDIA H200", "Tesla T4"])
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR", root)
    real_listdir = os.listdir
    # Directory order is filesystem-dependent; force the unhelpful one.
    monkeypatch.setattr(accelerators.os, "listdir", lambda path: (
        sorted(real_listdir(path), reverse=True) if path == root else real_listdir(path)))
    assert detect_gpus() == (["0", "1"], "H200")


def test_proc_driver_unreadable_information_still_counts_gpu(no_driver, monkeypatch,
                                                              tmp_path) -> None:
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR", _fake_proc(tmp_path, [None]))
    assert detect_gpus() == (["0"], None)


def test_nvidia_smi_used_when_no_proc(no_driver, monkeypatch) -> None:
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return subprocess.CompletedProcess(cmd, 0, stdout="0, Tesla T4\n1, Tesla T4\n", stderr="")
    monkeypatch.setattr(accelerators.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(accelerators.subprocess, "run", fake_run)
    assert detect_gpus() == (["0", "1"], "T4")
    cmd, kwargs = calls[0]
    assert cmd == ["/usr/bin/nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"]
    assert kwargs["timeout"] == 5


def test_nvidia_smi_timeout_means_no_gpus(no_driver, monkeypatch) -> None:
    def hang(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout"))
    monkeypatch.setattr(accelerators.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(accelerators.subprocess, "run", hang)
    assert detect_gpus() == ([], None)


def test_nvidia_smi_failure_exit_means_no_gpus(no_driver, monkeypatch) -> None:
    monkeypatch.setattr(accelerators.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(accelerators.subprocess, "run", lambda cmd, **kw:
                        subprocess.CompletedProcess(cmd, 9, stdout="0, Tesla T4\n", stderr="x"))
    assert detect_gpus() == ([], None)


def test_unexpected_error_never_raises(no_driver, monkeypatch) -> None:
    def boom(path):
        raise RuntimeError("driver exploded")
    monkeypatch.setattr(accelerators.os.path, "isdir", boom)
    assert detect_gpus() == ([], None)


def test_cuda_visible_devices_sets_ids(no_driver, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR",
                        _fake_proc(tmp_path, ["NVIDIA H100 80GB HBM3"] * 4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert detect_gpus() == (["2", "3"], "H100")


def test_cuda_visible_devices_type_follows_first_visible_device(no_driver, monkeypatch,
                                                                 tmp_path) -> None:
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR",
                        _fake_proc(tmp_path, ["NVIDIA H100 80GB HBM3", "Tesla T4"]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert detect_gpus() == (["1"], "T4")


def test_cuda_visible_devices_without_driver_keeps_ids(no_driver, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,GPU-def")
    assert detect_gpus() == (["GPU-abc", "GPU-def"], None)


@pytest.mark.parametrize("value", ["", "  ", "-1", "NoDevFiles"])
def test_cuda_visible_devices_none_values(no_driver, monkeypatch, tmp_path, value) -> None:
    monkeypatch.setattr(accelerators, "_PROC_GPUS_DIR", _fake_proc(tmp_path, ["NVIDIA L4"]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert detect_gpus() == ([], None)


def test_cuda_visible_devices_stops_at_negative_entry(no_driver, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")
    assert detect_gpus()[0] == ["0"]


def test_real_machine_detection_is_well_formed() -> None:
    # Whatever this host has, the contract holds: string ids and a str/None type.
    ids, accel = detect_gpus()
    assert all(isinstance(i, str) for i in ids)
    assert accel is None or (isinstance(accel, str) and accel)
    if not ids:
        assert accel is None
    if "CUDA_VISIBLE_DEVICES" not in os.environ and ids:
        assert ids == [str(i) for i in range(len(ids))]
