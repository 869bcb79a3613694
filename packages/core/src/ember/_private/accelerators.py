"""GPU discovery for a node, and the accelerator-type naming Ray uses.

Detection runs once per node start, but it also runs on every laptop and CI box
with no GPU at all, so the no-driver case must be close to free: it only checks
for a directory and looks ``nvidia-smi`` up on ``PATH``, spawning nothing.
When a driver is present, ``/proc/driver/nvidia/gpus`` is preferred over
``nvidia-smi`` because reading a few small files is much cheaper than starting
a process that initialises NVML.

A node advertises its GPU model the way Ray does, as a resource named
``accelerator_type:<TYPE>`` with quantity 1, so that
``@remote(accelerator_type="H100")`` can be matched by the ordinary resource
scheduler (such tasks request 0.001 of it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

__all__ = [
    "ACCELERATOR_RESOURCE_PREFIX",
    "accelerator_resource_name",
    "accelerator_type_from_name",
    "detect_gpus",
    "parse_nvidia_smi_output",
    "parse_proc_information",
]

ACCELERATOR_RESOURCE_PREFIX = "accelerator_type:"

# Module-level so tests can point detection at a fake driver tree.
_PROC_GPUS_DIR = "/proc/driver/nvidia/gpus"
_NVIDIA_SMI = "nvidia-smi"
_NVIDIA_SMI_TIMEOUT_S = 5.0

# Values that mean "no GPU" in CUDA_VISIBLE_DEVICES: CUDA itself treats "-1"
# as hiding every device, and some SLURM setups export "NoDevFiles".
_NO_DEVICE_VALUES = frozenset({"", "-1", "NoDevFiles"})

# Model tokens that name a GPU family. They are matched as whole words, so
# "A10G" never reads as "A10" and "L40S" never reads as "L4".
_KNOWN_TYPES = frozenset({
    "B100", "B200", "GB200", "GH200",
    "H20", "H100", "H200", "H800",
    "A2", "A10", "A10G", "A16", "A30", "A40", "A100", "A800",
    "L4", "L20", "L40", "L40S",
    "V100", "P4", "P40", "P100", "T4", "K80", "M60",
    "RTX", "GTX", "TITAN",
})

_WORD_SPLIT = re.compile(r"[\s\-_/]+")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def accelerator_resource_name(accelerator_type: str) -> str:
    """Return the resource name that advertises ``accelerator_type`` (Ray's spelling)."""
    return ACCELERATOR_RESOURCE_PREFIX + accelerator_type


def accelerator_type_from_name(name: str) -> str:
    """Map a driver-reported GPU name such as ``"NVIDIA H100 80GB HBM3"`` to ``"H100"``.

    The first word (in name order) that is a known GPU family wins, so vendor
    and brand words ("NVIDIA", "Tesla", "GeForce") are skipped. Unknown models
    fall back to the last word stripped of punctuation, which still gives a
    stable, usable resource name for hardware this table has not heard of.
    Returns ``""`` only when the name has no alphanumeric characters at all.
    """
    for word in _WORD_SPLIT.split(name):
        upper = word.upper()
        if upper in _KNOWN_TYPES:
            return upper
    words = name.split()
    for word in reversed(words):
        stripped = _NON_ALNUM.sub("", word)
        if stripped:
            return stripped
    return ""


def parse_proc_information(text: str) -> str | None:
    """Return the ``Model:`` value from a ``/proc/driver/nvidia/gpus/*/information`` file.

    The driver pads the value with tabs and spaces; ``None`` means the line is
    missing or empty (e.g. a truncated read).
    """
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Model":
            model = value.strip()
            return model or None
    return None


def parse_nvidia_smi_output(text: str) -> list[tuple[str, str]]:
    """Parse ``nvidia-smi --query-gpu=index,name --format=csv,noheader`` output.

    Returns ``(index, name)`` pairs in output order; malformed lines are
    skipped rather than failing detection for the remaining GPUs.
    """
    gpus: list[tuple[str, str]] = []
    for line in text.splitlines():
        index, sep, name = line.partition(",")
        index = index.strip()
        if not sep or not index.isdigit():
            continue
        gpus.append((index, name.strip()))
    return gpus


def detect_gpus() -> tuple[list[str], str | None]:
    """Return ``(gpu_ids, accelerator_type)`` for this machine.

    ``CUDA_VISIBLE_DEVICES``, when set, decides the ids (the same ids the
    worker will later export), because the user or a cluster manager already
    chose which devices this node may use. The accelerator type still comes
    from the driver. Never raises: a broken driver or odd environment must not
    stop a node from starting, it only makes the node GPU-less.
    """
    try:
        return _detect_gpus()
    except Exception:  # noqa: BLE001 - detection failure means "no GPUs", never a crash
        return [], None


def _detect_gpus() -> tuple[list[str], str | None]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = _ids_from_visible_devices(visible)
        if not ids:
            return [], None
        return ids, _type_for_visible(ids, _driver_gpus())
    driver = _driver_gpus()
    ids = [index for index, _ in driver]
    return ids, _type_from_names(name for _, name in driver)


def _ids_from_visible_devices(value: str) -> list[str]:
    value = value.strip()
    if value in _NO_DEVICE_VALUES:
        return []
    ids: list[str] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        # CUDA ignores every entry from the first invalid (negative) index on,
        # so "0,-1,1" exposes only device 0; mirror that.
        if entry.startswith("-"):
            break
        ids.append(entry)
    return ids


def _driver_gpus() -> list[tuple[str, str | None]]:
    """List ``(index, model name)`` for every GPU the driver knows, cheapest source first."""
    if os.path.isdir(_PROC_GPUS_DIR):
        return _gpus_from_proc(_PROC_GPUS_DIR)
    smi = shutil.which(_NVIDIA_SMI)
    if smi is None:
        return []
    return _gpus_from_nvidia_smi(smi)


def _gpus_from_proc(gpus_dir: str) -> list[tuple[str, str | None]]:
    # Entries are PCI bus ids ("0000:3b:00.0"); fixed-width lowercase hex sorts
    # in bus order, which is the order nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID use.
    gpus: list[tuple[str, str | None]] = []
    for entry in sorted(os.listdir(gpus_dir)):
        path = os.path.join(gpus_dir, entry)
        if not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "information"), encoding="utf-8", errors="replace") as f:
                model = parse_proc_information(f.read())
        except OSError:
            model = None  # the GPU still counts; only its name is unknown
        gpus.append((str(len(gpus)), model))
    return gpus


def _gpus_from_nvidia_smi(smi: str) -> list[tuple[str, str | None]]:
    try:
        result = subprocess.run(
            [smi, "--query-gpu=index,name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return list(parse_nvidia_smi_output(result.stdout))


def _type_for_visible(ids: list[str], driver: list[tuple[str, str | None]]) -> str | None:
    # Prefer the model of the first visible device; ids that are UUIDs or out
    # of range fall back to the first GPU, which is right on homogeneous nodes.
    names = {index: name for index, name in driver}
    first = names.get(ids[0])
    if first:
        return _type_from_names([first])
    return _type_from_names(name for _, name in driver)


def _type_from_names(names) -> str | None:
    for name in names:
        if name:
            return accelerator_type_from_name(name) or None
    return None
