"""Benchmark: samples/s of the training data module (X2CTDataModule's train loader) for several worker counts.

    python benchmarks/bench_loader.py [--prepare 32] [--root DIR] [--cube 128] [--workers 0 2 4] [--batch 1]
        [--epochs 2] [--pin-memory] [--out results.json]

Without ``--root``, ``--prepare N`` phantom cases are written first with ``x2ct-prepare``'s own code (the prepare
config composed with ``source=phantom source.n_cases=N volume.cube=<cube> lateral_angles=[90]``) into a temporary
folder. The data module is composed from the train config (``data.root=... data.cube=... data.num_workers=...
data.batch_size=... data.val_fraction=0``) and its train loader is read ``--epochs`` times; the first epoch
includes starting the workers, the last one is the steady rate. Saves JSON with the machine and prints a line per
worker count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from x2ct.config_dir import CONFIG_DIR  # noqa: E402
from x2ct.utils.machine import describe_machine, host_activity, save_report  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"
LATERAL_ANGLES = "[90]"  # the loader reads xray1 and the 90-degree lateral only


def compose(name: str, overrides: Sequence[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=name, overrides=list(overrides))


def prepare_phantoms(root: Path, n_cases: int, cube: int, workers: int) -> float:
    """Write ``n_cases`` phantom triplets at ``cube``^3 into ``root`` with x2ct-prepare's code; returns seconds."""
    from x2ct.prepare import prepare_from_config

    overrides = [
        "source=phantom",
        f"source.n_cases={n_cases}",
        f"out_dir={root}",
        f"volume.cube={cube}",
        f"lateral_angles={LATERAL_ANGLES}",
        f"workers={workers}",
        "n_previews=0",
    ]
    start = time.perf_counter()
    status = prepare_from_config(compose("prepare", overrides), progress=False)
    if status:
        raise RuntimeError(f"x2ct-prepare failed with status {status} in {root}")
    return time.perf_counter() - start


def loader_rate(root: Path, cube: int, workers: int, batch: int, epochs: int, pin_memory: bool) -> dict[str, Any]:
    """Samples/s of each epoch of the data module's train loader (composed from the train config)."""
    from hydra.utils import instantiate

    overrides = [
        f"data.root={root}",
        f"data.cube={cube}",
        f"data.num_workers={workers}",
        f"data.batch_size={batch}",
        "data.val_fraction=0",
        f"data.pin_memory={str(pin_memory).lower()}",
        f"paths.output_dir={root}",
    ]
    datamodule = instantiate(compose("train", overrides).data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        samples = sum(len(batch["case_id"]) for batch in loader)
        rates.append(samples / (time.perf_counter() - start))
    return {"num_workers": workers, "samples_per_epoch": samples, "samples_per_s_per_epoch": rates}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="a prepared folder (default: prepare phantoms)")
    parser.add_argument("--prepare", type=int, default=32, help="phantom cases to prepare when --root is absent")
    parser.add_argument("--prepare-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cube", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pin-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.prepare < 1:
        parser.error(f"need --epochs >= 1 and --prepare >= 1, got {args.epochs} and {args.prepare}")
    report: dict[str, Any] = {"benchmark": "data loader", "machine": describe_machine()}
    report["host_activity_before"] = host_activity()
    with tempfile.TemporaryDirectory(prefix="x2ct-bench-loader-") as scratch:
        root = args.root or Path(scratch)
        if args.root is None:
            seconds = prepare_phantoms(root, args.prepare, args.cube, args.prepare_workers)
            report["prepare"] = {"cases": args.prepare, "cube": args.cube, "seconds": seconds}
            print(f"prepared {args.prepare} phantoms at {args.cube}^3 in {seconds:.1f} s", flush=True)
        report["settings"] = {"root": str(root), "cube": args.cube, "batch": args.batch, "pin_memory": args.pin_memory}
        report["loader"] = []
        for workers in args.workers:
            record = loader_rate(root, args.cube, workers, args.batch, args.epochs, args.pin_memory)
            rates = ", ".join(f"{rate:.1f}" for rate in record["samples_per_s_per_epoch"])
            print(f"workers {workers}: samples/s per epoch {rates}", flush=True)
            report["loader"].append(record)
    save_report(report, args.out or RESULTS_DIR / f"loader_{report['machine']['hostname']}.json")
    return report


if __name__ == "__main__":
    main()
