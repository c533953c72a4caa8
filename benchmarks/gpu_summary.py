"""Summary of a ``benchmarks/gpu_check.sh`` run: the figures of issue 9 against their goals, from its JSON files.

    python benchmarks/gpu_summary.py OUT_DIR

Reads ``drr_cuda.json``, ``train_128_eager.json``, ``train_128_compile.json``, ``train_256.json`` and
``loader.json`` (whichever exist) and prints: DRR/s at 200x200 (goal >= 2,000), the training tables, the speed-up
of bf16 (eager and compiled) over fp32 eager per generator and batch (goal >= 2x), peak memory at 128^3 batch 4
(goal <= 24 GB) and whether 256^3 batch 1 trained, and the loader's samples/s against the fastest step's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import format_table

DRR_GOAL_PER_S = 2000.0
SPEEDUP_GOAL = 2.0
BATCH4_MEMORY_GOAL_GB = 24.0
GB_PER_GIB = 2**30 / 1e9
FP32, BF16 = "32-true", "bf16-mixed"
VARIANTS = {"bf16": (BF16, False), "bf16+compile": (BF16, True), "fp32+compile": (FP32, True)}
TRAIN_FILES = ("train_128_eager.json", "train_128_compile.json", "train_256.json")


def load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    if not path.is_file():
        print(f"{name}: missing (that part failed or did not run)")
        return None
    return json.loads(path.read_text())


def drr_lines(report: dict[str, Any]) -> list[str]:
    cuda = report.get("cuda", {})
    if "skipped" in cuda:
        return [f"DRR: skipped: {cuda['skipped']}"]
    lines = []
    for method, figures in cuda.items():
        rate = figures["drr_per_s_median"]
        verdict = "meets" if rate >= DRR_GOAL_PER_S else "misses"
        size = "x".join(map(str, figures["detector"]))
        lines.append(f"DRR {method}: {rate:,.0f} views/s at {size} ({verdict} the goal >= {DRR_GOAL_PER_S:,.0f})")
    return lines


def ok_cases(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [case for report in reports for case in report["cases"] if case["ours"].get("ok")]


def speedup_lines(cases: list[dict[str, Any]]) -> list[str]:
    """samples/s of each variant over fp32 eager, per generator, cube and batch; the goal is for bf16 (+ compile)."""
    rate = {
        (c["generator"], c["cube"], c["batch"], c["precision"], c["compile"]): c["ours"]["samples_per_s"] for c in cases
    }
    lines = []
    for (generator, cube, batch, precision, compiled), base in sorted(rate.items()):
        if (precision, compiled) != (FP32, False):
            continue
        gains = {
            label: rate[key] / base
            for label, variant in VARIANTS.items()
            if (key := (generator, cube, batch, *variant)) in rate
        }
        if not gains:
            continue
        best_bf16 = max((gain for label, gain in gains.items() if label.startswith("bf16")), default=0.0)
        verdict = "meets" if best_bf16 >= SPEEDUP_GOAL else "misses"
        listed = ", ".join(f"{label} {gain:.2f}x" for label, gain in gains.items())
        lines.append(f"{generator} {cube}^3 b{batch} over fp32 eager: {listed} (bf16 {verdict} >= {SPEEDUP_GOAL}x)")
    return lines


def memory_lines(cases: list[dict[str, Any]]) -> list[str]:
    lines = []
    for case in cases:
        peak_gib = case["ours"].get("peak_gpu_allocated_gib")
        if peak_gib is None:
            continue
        peak_gb = peak_gib * GB_PER_GIB
        if case["cube"] == 128 and case["batch"] == 4:
            verdict = "meets" if peak_gb <= BATCH4_MEMORY_GOAL_GB else "misses"
            lines.append(f"{case['label']}: peak {peak_gb:.1f} GB ({verdict} <= {BATCH4_MEMORY_GOAL_GB:.0f} GB)")
        elif case["cube"] == 256:
            lines.append(f"{case['label']}: trains, peak {peak_gb:.1f} GB")
    return lines


def loader_lines(report: dict[str, Any], cases: list[dict[str, Any]]) -> list[str]:
    fastest = max((c["ours"]["samples_per_s"] for c in cases if c["cube"] == report["settings"]["cube"]), default=None)
    lines = []
    for record in report["loader"]:
        steady = record["samples_per_s_per_epoch"][-1]
        versus = f" ({steady / fastest:.2f}x the fastest training step's {fastest:.1f})" if fastest else ""
        lines.append(f"loader, {record['num_workers']} workers: {steady:.1f} samples/s{versus}")
    return lines


def main(folder: Path) -> None:
    drr = load(folder, "drr_cuda.json")
    trains = [report for name in TRAIN_FILES if (report := load(folder, name))]
    loader = load(folder, "loader.json")
    if trains:
        machine = trains[0]["machine"]
        print(f"device: {machine.get('cuda_device')}; torch {machine['torch']}; host CPU {machine['cpu']}")
    lines = drr_lines(drr) if drr else []
    for report in trains:
        failed = [
            c["label"] + ": " + c["ours"].get("error", "")[:200] for c in report["cases"] if not c["ours"].get("ok")
        ]
        lines += ["", format_table(report["cases"], report["settings"]["device"]), *(f"FAILED {f}" for f in failed)]
    cases = ok_cases(trains)
    lines += ["", *speedup_lines(cases), *memory_lines(cases)]
    if loader:
        lines += ["", *loader_lines(loader, cases)]
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/gpu_summary.py OUT_DIR")
    main(Path(sys.argv[1]))
