"""Benchmark: X2CT-GAN training steps (generator + discriminator, the module's own losses and optimizers).

    python benchmarks/bench_train.py [--cubes 64 128] [--steps 3]

CPU: seconds per training step and peak resident memory, paper-width networks at each cube size (each size in a
fresh subprocess so that the peak belongs to it). GPU (when CUDA is present): samples/s and peak GPU memory at
128^3 for batch 1 and 4, fp32 vs bf16 autocast, with and without torch.compile, and the data-loader throughput of
prepared triplets against the step rate. Prints and saves benchmarks/results/train_<host>.json with the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from x2ct.models import BiplanarGenerator, PatchDiscriminator3D
from x2ct.models.losses import LossWeights, discriminator_loss_terms, generator_loss_terms
from x2ct.utils.machine import describe_machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WARMUP_STEPS = 1
GPU_BATCH_SIZES = (1, 4)
KIB = 1024


def make_step(cube: int, device: str, batch: int, autocast_dtype: torch.dtype | None, compile_model: bool):
    """A closure running one G step and one D step exactly as the LightningModule does."""
    generator = BiplanarGenerator(cube=cube).to(device)
    discriminator = PatchDiscriminator3D().to(device)
    if compile_model:
        generator = torch.compile(generator)
        discriminator = torch.compile(discriminator)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.99))
    weights = LossWeights()
    xray1 = torch.rand(batch, 1, cube, cube, device=device)
    xray2 = torch.rand(batch, 1, cube, cube, device=device)
    real = torch.rand(batch, 1, cube, cube, cube, device=device)

    def autocast():
        return torch.autocast(device_type=device, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    def step() -> None:
        with autocast():
            fake = generator(xray1, xray2)
            for p in discriminator.parameters():
                p.requires_grad_(False)
            g_terms = generator_loss_terms(discriminator(fake, xray1, xray2), fake, real, weights)
        opt_g.zero_grad(set_to_none=True)
        g_terms["total"].backward()
        opt_g.step()
        for p in discriminator.parameters():
            p.requires_grad_(True)
        with autocast():
            d_terms = discriminator_loss_terms(
                discriminator(real, xray1, xray2), discriminator(fake.detach(), xray1, xray2), weights
            )
        opt_d.zero_grad(set_to_none=True)
        d_terms["total"].backward()
        opt_d.step()

    return step


def time_steps(step, steps: int, device: str) -> list[float]:
    for _ in range(WARMUP_STEPS):
        step()
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def cpu_case(cube: int, steps: int) -> dict[str, Any]:
    """Run in a fresh process: seconds per step and the process's peak resident memory."""
    times = time_steps(make_step(cube, "cpu", 1, None, False), steps, "cpu")
    return {
        "cube": cube,
        "batch": 1,
        "seconds_per_step_median": sorted(times)[len(times) // 2],
        "seconds_per_step_all": times,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / 2**30,
    }


def gpu_cases(cube: int, steps: int) -> list[dict[str, Any]]:
    results = []
    for batch in GPU_BATCH_SIZES:
        for dtype_name, dtype in (("fp32", None), ("bf16-mixed", torch.bfloat16)):
            for compile_model in (False, True):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                record: dict[str, Any] = {
                    "cube": cube,
                    "batch": batch,
                    "precision": dtype_name,
                    "compile": compile_model,
                }
                try:
                    times = time_steps(make_step(cube, "cuda", batch, dtype, compile_model), steps, "cuda")
                    median = sorted(times)[len(times) // 2]
                    record |= {
                        "seconds_per_step_median": median,
                        "samples_per_s": batch / median,
                        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
                    }
                except Exception as err:  # an out-of-memory or compile failure is a result, not a crash
                    record["error"] = f"{type(err).__name__}: {err}"[:500]
                print(json.dumps(record))
                results.append(record)
    return results


def loader_throughput(cube: int, n_cases: int, num_workers: int) -> dict[str, Any]:
    """Samples/s of the X2CTDataModule train loader over freshly prepared phantom triplets."""
    from hydra import compose, initialize_config_dir

    from x2ct.config_dir import CONFIG_DIR
    from x2ct.data.datamodule import X2CTDataModule
    from x2ct.prepare import prepare_from_config

    root = Path(tempfile.mkdtemp(prefix="x2ct-bench-loader-"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="prepare",
            overrides=[f"source.n_cases={n_cases}", f"out_dir={root}", f"volume.cube={cube}", "n_previews=0"],
        )
    prepare_from_config(cfg, progress=False)
    datamodule = X2CTDataModule(root, cube=cube, num_workers=num_workers, val_fraction=0.0, batch_size=1)
    datamodule.setup("fit")
    start = time.perf_counter()
    count = sum(batch["ct"].shape[0] for batch in datamodule.train_dataloader())
    seconds = time.perf_counter() - start
    return {"cube": cube, "num_workers": num_workers, "samples": count, "samples_per_s": count / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cpu-case", type=int, default=None, help=argparse.SUPPRESS)  # internal: one subprocess
    args = parser.parse_args()
    if args.cpu_case is not None:
        print(json.dumps(cpu_case(args.cpu_case, args.steps)))
        return
    result: dict[str, Any] = {
        "benchmark": "train_step",
        "networks": "paper widths (X2CT-GAN biplanar + PatchGAN)",
        "machine": describe_machine(),
        "cpu": [],
    }
    for cube in args.cubes:
        done = subprocess.run(
            [sys.executable, __file__, "--cpu-case", str(cube), "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        record = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(record))
        result["cpu"].append(record)
    if torch.cuda.is_available():
        result["gpu"] = gpu_cases(128, max(args.steps, 10))
        result["loader"] = [loader_throughput(128, 32, workers) for workers in (0, 4, 8)]
    else:
        result["gpu"] = "skipped: no CUDA device"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"train_{result['machine']['hostname']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
