"""Benchmark of the legacy X2CT metrics: the torch implementation against the scikit-image slice loop.

On a 128^3 pair (smooth structure with a sharp-edged box, and a blurred, shifted, noisy prediction) measures:

* CPU (``--threads`` torch thread counts, default 2 then 1): seconds per pair of ``legacy_x2ct_metrics`` (all 14
  metrics); the load average is recorded because other jobs on a shared machine can slow multi-threaded torch
  by 10-50x (spinning OpenMP threads; ``OMP_WAIT_POLICY=PASSIVE`` in the environment avoids it, also recorded);
* the official way: ``skimage.metrics.structural_similarity`` slice by slice along D, H and W (SSIM only), and
  the whole numpy + scikit-image reference (``legacy_x2ct_metrics_reference``);
* the largest difference between the torch metrics and the reference (agreement check);
* ``modern_metrics`` on CPU (3D SSIM, distance transforms);
* CUDA (when available): seconds per pair for one pair and for a batch of ``--gpu-batch`` pairs.

Prints a summary and writes ``benchmarks/results/metrics_<hostname>.json``.
Usage: ``python benchmarks/bench_metrics.py [--size 128] [--repeats 5] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from x2ct.metrics import LEGACY_METRIC_NAMES, legacy_x2ct_metrics, legacy_x2ct_metrics_batch, modern_metrics
from x2ct.metrics.legacy_reference import legacy_x2ct_metrics_reference, skimage_ssim_slice_mean
from x2ct.utils.machine import describe_machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STRUCTURE_SIGMA_VOXELS = 3.0
BLUR_SIGMA_VOXELS = 1.0
NOISE_STD = 0.02
SOFT_TISSUE_MAX = 0.45  # [0, 1] scale: up to about 100 HU
BONE_VALUE = 0.6  # about 476 HU
GPU_BATCH = 8
SEED = 0


def benchmark_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) float32 (size, size, size) volumes on [0, 1]."""
    rng = np.random.default_rng(SEED)
    shape = (size, size, size)
    real = gaussian_filter(rng.random(shape), sigma=STRUCTURE_SIGMA_VOXELS)
    real = (real - real.min()) / (real.max() - real.min()) * SOFT_TISSUE_MAX
    q = size // 4
    real[q : 3 * q, 3 * q // 2 : 5 * q // 2, 3 * q // 2 : 5 * q // 2] = BONE_VALUE
    fake = np.roll(gaussian_filter(real, sigma=BLUR_SIGMA_VOXELS), shift=1, axis=1)
    fake = fake + NOISE_STD * rng.standard_normal(shape)
    return real.astype(np.float32), fake.astype(np.float32)


def seconds_per_call(function: Callable[[], Any], repeats: int, synchronize: bool = False) -> dict[str, float]:
    """Median and minimum wall time of ``function()`` over ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        if synchronize:
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if synchronize:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def cpu_results(real: np.ndarray, fake: np.ndarray, repeats: int, threads: list[int]) -> dict[str, Any]:
    ours = legacy_x2ct_metrics(real, fake)
    reference = legacy_x2ct_metrics_reference(real, fake)
    differences = {name: abs(ours[name] - reference[name]) for name in LEGACY_METRIC_NAMES}
    skimage_loop = seconds_per_call(lambda: [skimage_ssim_slice_mean(real, fake, axis) for axis in range(3)], repeats)
    torch_all = {}
    for count in threads:
        torch.set_num_threads(count)
        torch_all[f"{count}_threads"] = seconds_per_call(lambda: legacy_x2ct_metrics(real, fake), repeats)
    torch.set_num_threads(threads[0])
    return {
        "torch_legacy_all_metrics": torch_all,
        "skimage_ssim_slice_loop": skimage_loop,
        "numpy_skimage_reference_all_metrics": seconds_per_call(
            lambda: legacy_x2ct_metrics_reference(real, fake), repeats
        ),
        "speedup_vs_skimage_loop": {
            key: skimage_loop["median_s"] / value["median_s"] for key, value in torch_all.items()
        },
        "modern_metrics": seconds_per_call(lambda: modern_metrics(real, fake), max(1, repeats // 2)),
        "max_abs_difference_vs_reference": max(differences.values()),
        "worst_metric": max(differences, key=differences.__getitem__),
        "metrics": ours,
    }


def cuda_results(real: np.ndarray, fake: np.ndarray, repeats: int, batch: int, cpu: dict[str, float]) -> dict[str, Any]:
    real_t = torch.from_numpy(real)[None, None].cuda()
    fake_t = torch.from_numpy(fake)[None, None].cuda()
    single = seconds_per_call(lambda: legacy_x2ct_metrics_batch(real_t, fake_t), repeats, synchronize=True)
    real_b, fake_b = real_t.expand(batch, -1, -1, -1, -1), fake_t.expand(batch, -1, -1, -1, -1)
    batched = seconds_per_call(lambda: legacy_x2ct_metrics_batch(real_b, fake_b), repeats, synchronize=True)
    on_gpu = {name: float(value[0]) for name, value in legacy_x2ct_metrics_batch(real_t, fake_t).items()}
    return {
        "device": torch.cuda.get_device_name(0),
        "one_pair": single,
        "batch": batch,
        "batch_seconds_per_pair": batched["median_s"] / batch,
        "max_abs_difference_vs_cpu": max(abs(on_gpu[name] - cpu[name]) for name in LEGACY_METRIC_NAMES),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="cube side of the volume pair")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch CPU thread counts to time (first: the rest)"
    )
    parser.add_argument("--gpu-batch", type=int, default=GPU_BATCH)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads[0])
    real, fake = benchmark_pair(args.size)
    report: dict[str, Any] = {
        "machine": describe_machine(),
        "setup": {
            "volume": list(real.shape),
            "repeats": args.repeats,
            "threads": args.threads,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "load_average_before": os.getloadavg(),
        "cpu": cpu_results(real, fake, args.repeats, args.threads),
    }
    report["load_average_after"] = os.getloadavg()
    if torch.cuda.is_available():
        report["cuda"] = cuda_results(real, fake, args.repeats, args.gpu_batch, report["cpu"]["metrics"])
        report["cuda"]["speedup_vs_skimage_loop"] = (
            report["cpu"]["skimage_ssim_slice_loop"]["median_s"] / report["cuda"]["batch_seconds_per_pair"]
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_path = args.out_dir / f"metrics_{socket.gethostname()}.json"
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written: {out_path}")
    return report


if __name__ == "__main__":
    main()
