"""Training precision by the hardware: ``bf16-auto`` becomes ``bf16-mixed`` where BF16 is native, else ``32-true``.

bf16 autocast only pays where the hardware computes BF16 natively: on a CPU without BF16 instructions it is emulated
and slower than fp32 (issue 9 measured the official step 2.3x slower on such a Xeon, 1.8x faster on an AMD EPYC with
``avx512_bf16``). Native means: a CUDA device of compute capability 8.0 (Ampere) or newer; a CPU whose flags list
``avx512_bf16`` or ``amx_bf16`` (Linux /proc/cpuinfo).
"""

from __future__ import annotations

import torch

from x2ct.utils.machine import cpu_flags

AUTO_BF16 = "bf16-auto"
BF16_MIXED = "bf16-mixed"
FP32 = "32-true"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_BF16_CUDA_CAPABILITY = (8, 0)
GPU_ACCELERATORS = ("gpu", "cuda")


def native_bf16(device_type: str) -> tuple[bool, str]:
    """Whether ``device_type`` ("cpu" or "cuda") computes BF16 natively, and why (one line)."""
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device is visible"
        capability = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if capability >= MIN_BF16_CUDA_CAPABILITY:
            return True, f"{name} (compute capability {capability[0]}.{capability[1]}) has native BF16"
        return False, f"{name} (compute capability {capability[0]}.{capability[1]}) has no native BF16 (needs 8.0+)"
    if device_type == "cpu":
        present = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
        if present:
            return True, f"the CPU has native BF16 ({', '.join(present)})"
        return False, f"the CPU lists none of {', '.join(CPU_BF16_FLAGS)}: BF16 would be emulated, slower than fp32"
    raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")


def accelerator_device(accelerator: str) -> str:
    """The device type a Lightning ``accelerator`` setting trains on ("auto": CUDA when visible)."""
    if accelerator in GPU_ACCELERATORS:
        return "cuda"
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def resolve_precision(precision: str | int, accelerator: str) -> tuple[str | int, str | None]:
    """``(precision to give Lightning, why)``: ``bf16-auto`` -> ``bf16-mixed`` or ``32-true`` by
    :func:`native_bf16` on the accelerator's device, with the reason; any other value unchanged, why None."""
    if precision != AUTO_BF16:
        return precision, None
    device = accelerator_device(accelerator)
    native, why = native_bf16(device)
    chosen = BF16_MIXED if native else FP32
    return chosen, f"trainer.precision={AUTO_BF16} -> {chosen} on {device}: {why}"
