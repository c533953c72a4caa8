"""Benchmark: x2ct's ``Conv3d`` (oneDNN at batch 1 on CPU) against ``torch.nn.Conv3d``, per layer and per generator.

    python benchmarks/bench_conv3d.py [--generators ray_lifting biplanar] [--cubes 64 128]
        [--override experiment=demo_ray_lifting ...] [--repeats 3] [--out results.json]

PyTorch sends a batch-1 float32 CPU convolution with a 3^3 kernel and ``C * D * H <= 20480`` to its slow native 3D
backend (see :mod:`x2ct.models.onednn_conv`). Two measurements, interleaved (native, ours, native, ours, ...) in one
process so that they see the same machine state:

* layers: forward + backward of one 3^3 convolution at the channel/size pairs of the generators' levels;
* generators: forward + backward of each generator config composed from the train config (``model/generator=<name>
  data.cube=<cube>`` plus ``--override``), once as built (x2ct ``Conv3d``) and once with every such layer turned
  back into ``torch.nn.Conv3d`` (same weights, same inputs).

Prints the median seconds and native/ours ratios, and saves JSON (default
``benchmarks/results/conv3d_<host>.json``) with the machine and what else ran on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from x2ct.models.onednn_conv import Conv3d  # noqa: E402
from x2ct.utils.machine import describe_machine, host_activity, save_report  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"
LAYER_CASES: tuple[tuple[int, int], ...] = ((16, 64), (16, 32), (32, 16), (64, 8), (128, 4), (256, 4))  # (C, side)
KERNEL: int = 3
WARMUP: int = 2


def time_fwd_bwd(run: Callable[[], torch.Tensor], repeats: int) -> list[float]:
    """Seconds of ``run().sum().backward()``, ``repeats`` times after :data:`WARMUP` untimed calls."""
    for _ in range(WARMUP):
        run().sum().backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run().sum().backward()
        times.append(time.perf_counter() - start)
    return times


def as_native(model: nn.Module) -> nn.Module:
    """Turn every x2ct ``Conv3d`` of ``model`` back into ``torch.nn.Conv3d`` in place (same parameters)."""
    for module in model.modules():
        if type(module) is Conv3d:
            module.__class__ = nn.Conv3d
    return model


def as_ours(model: nn.Module) -> nn.Module:
    """The inverse of :func:`as_native` for the layers it turned back."""
    for module in model.modules():
        if type(module) is nn.Conv3d and hasattr(module, "_stack_by_shape"):
            module.__class__ = Conv3d
    return model


def pair(model: nn.Module, run: Callable[[], torch.Tensor], repeats: int) -> dict[str, Any]:
    """Interleaved native/ours timings of ``run`` with ``model``'s layers switched between the two classes."""
    native: list[float] = []
    ours: list[float] = []
    for _ in range(repeats):
        as_native(model)
        native += time_fwd_bwd(run, 1)
        as_ours(model)
        ours += time_fwd_bwd(run, 1)
    median_native, median_ours = statistics.median(native), statistics.median(ours)
    return {"native_s": median_native, "ours_s": median_ours, "native_over_ours": median_native / median_ours}


def bench_layers(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for channels, side in LAYER_CASES:
        conv = Conv3d(channels, channels, KERNEL, padding=KERNEL // 2)
        x = torch.randn(1, channels, side, side, side, requires_grad=True)
        row = {"channels": channels, "side": side, **pair(conv, lambda c=conv, t=x: c(t), repeats)}
        print(
            f"layer {channels:>3} ch at {side:>3}^3: native {row['native_s'] * 1e3:7.1f} ms, "
            f"ours {row['ours_s'] * 1e3:7.1f} ms, x{row['native_over_ours']:.2f}",
            flush=True,
        )
        rows.append(row)
    return rows


def generator_inputs(generator: nn.Module, cube: int) -> dict[str, torch.Tensor]:
    """Random X-rays and the aligned parallel views' matrices (AP along H, lateral along W)."""
    ap = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])
    lateral = torch.tensor([[[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])
    inputs = {"xray1": torch.rand(1, 1, cube, cube), "xray2": torch.rand(1, 1, cube, cube)}
    if getattr(generator, "uses_geometry", False):
        inputs |= {"proj_xray1": ap, "proj_xray2": lateral}
    return inputs


def bench_generators(names: Sequence[str], cubes: Sequence[int], overrides: Sequence[str], repeats: int) -> list:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from x2ct.config_dir import CONFIG_DIR

    rows = []
    for name in names:
        for cube in cubes:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
                config = compose("train", [*overrides, f"model/generator={name}", f"data.cube={cube}"])
            torch.manual_seed(0)
            generator = instantiate(config.model.generator)
            inputs = generator_inputs(generator, cube)
            n_layers = sum(type(m) is Conv3d for m in generator.modules())
            row = {"generator": name, "cube": cube, "conv3d_layers": n_layers}
            row |= pair(generator, lambda g=generator, i=inputs: g(**i), repeats)
            print(
                f"{name} at {cube}^3 ({n_layers} Conv3d): native {row['native_s']:.3f} s, ours {row['ours_s']:.3f} s, "
                f"x{row['native_over_ours']:.2f}",
                flush=True,
            )
            rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["ray_lifting", "biplanar"])
    parser.add_argument("--cubes", type=int, nargs="+", default=[64])
    parser.add_argument("--override", action="append", default=[], help="a train-config override (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    report: dict[str, Any] = {"benchmark": "Conv3d oneDNN vs native", "machine": describe_machine()}
    report["host_activity_before"] = host_activity()
    report["settings"] = {"repeats": args.repeats, "overrides": args.override, "warmup": WARMUP}
    report["layers"] = [] if args.skip_layers else bench_layers(args.repeats)
    report["generators"] = bench_generators(args.generators, args.cubes, args.override, args.repeats)
    report["host_activity_after"] = host_activity()
    save_report(report, args.out or RESULTS_DIR / f"conv3d_{report['machine']['hostname']}.json")
    return report


if __name__ == "__main__":
    main()
