"""Device check for issue #2: GPUs are detected and assigned to num_gpus tasks.

    python tools/ci/gpu_check.py      (on a machine with an NVIDIA GPU and torch)
"""
import os
import time

import ember

t0 = time.perf_counter()
ember.init()
print(f"init {time.perf_counter() - t0:.2f}s; cluster resources: {ember.cluster_resources()}")


@ember.remote(num_gpus=1)
def matmul():
    import torch
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    a = torch.randn(4096, 4096, device="cuda")
    b = torch.randn(4096, 4096, device="cuda")
    c = (a @ b).sum().item()
    torch.cuda.synchronize()
    return visible, ember.get_gpu_ids(), torch.cuda.get_device_name(0), c


@ember.remote(num_gpus=0.5)
def half():
    return os.environ.get("CUDA_VISIBLE_DEVICES"), ember.get_gpu_ids()


@ember.remote
def cpu_only():
    return os.environ.get("CUDA_VISIBLE_DEVICES")


visible, ids, name, checksum = ember.get(matmul.remote())
print(f"num_gpus=1 task: CUDA_VISIBLE_DEVICES={visible!r} get_gpu_ids()={ids} "
      f"device={name!r} matmul checksum={checksum:.3f}")
print("two num_gpus=0.5 tasks:", ember.get([half.remote(), half.remote()]))
print("CPU task sees CUDA_VISIBLE_DEVICES =", repr(ember.get(cpu_only.remote())))
assert ember.cluster_resources().get("GPU", 0) >= 1, "GPU not detected"
assert visible is not None and visible != ""
ember.shutdown()
print("GPU CHECK OK")
