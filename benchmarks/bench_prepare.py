"""Benchmark: phantom cases per minute through the whole preparation pipeline (128^3, five views).

    python benchmarks/bench_prepare.py [--n-cases 100] [--workers 2]

Prints the figures and saves them with the machine's description to benchmarks/results/prepare_<host>.json.
Goal (issue 2): 100 cases in under 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from x2ct.config_dir import CONFIG_DIR
from x2ct.prepare import prepare_from_config
from x2ct.utils.machine import describe_machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-cases", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cube", type=int, default=128)
    args = parser.parse_args()

    out_dir = Path(tempfile.mkdtemp(prefix="x2ct-bench-prepare-"))
    overrides = [
        f"source.n_cases={args.n_cases}",
        f"out_dir={out_dir}",
        f"workers={args.workers}",
        f"volume.cube={args.cube}",
        "n_previews=0",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="prepare", overrides=["source=phantom", *overrides])
    try:
        start = time.perf_counter()
        status = prepare_from_config(cfg)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    result = {
        "benchmark": "prepare_phantoms",
        "n_cases": args.n_cases,
        "workers": args.workers,
        "cube": args.cube,
        "views": 1 + len(cfg.lateral_angles),
        "drr": {k: cfg.drr[k] for k in ("mode", "geometry", "method", "n_samples")},
        "exit_status": status,
        "seconds": round(seconds, 2),
        "cases_per_minute": round(60.0 * args.n_cases / seconds, 1),
        "machine": describe_machine(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"prepare_{result['machine']['hostname']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
