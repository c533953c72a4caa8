"""Copy the pure-Python packages that the GPU machine's image lacks from this environment into a folder to carry.

    .venv/bin/python benchmarks/stage_packages.py [--dest .bench/site]

The device image (its python3 holds CUDA PyTorch, Lightning, h5py, scipy, OpenCV, torchmetrics, ...) has no
hydra-core, omegaconf, antlr4-python3-runtime, nibabel or pydicom, and cannot reach a package registry. These are
pure Python, so the files this environment installed for them (its RECORD, without caches, scripts and test
folders) work there too: stage them into ``--dest`` (ignored by git under ``.bench/``), carry that folder, and put
it on PYTHONPATH (``benchmarks/gpu_check.sh`` does). Copies nothing with compiled code (refuses, naming the file).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO / ".bench" / "site"
MISSING_ON_DEVICE = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "nibabel", "pydicom")
SKIPPED_PARTS = ("__pycache__", "tests")
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")


def staged_files(name: str) -> list[tuple[Path, PurePosixPath]]:
    """(installed file, path relative to site-packages) of distribution ``name``, caches and tests left out."""
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        raise SystemExit(f"{name} is not installed in {sys.executable}'s environment") from None
    files = []
    for relative in dist.files or []:
        path = PurePosixPath(str(relative))
        if path.parts[0] == ".." or any(part in SKIPPED_PARTS for part in path.parts):
            continue  # scripts outside site-packages, byte code, test suites
        if path.suffix in COMPILED_SUFFIXES:
            raise SystemExit(f"{name} has compiled code ({path}): carry a wheel built for the device instead")
        files.append((Path(dist.locate_file(relative)), path))
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--packages", nargs="+", default=list(MISSING_ON_DEVICE))
    args = parser.parse_args(argv)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    total = 0
    for name in args.packages:
        files = staged_files(name)
        for source, relative in files:
            target = args.dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            total += source.stat().st_size
        print(f"{name}: {len(files)} files")
    shown = args.dest.relative_to(REPO) if args.dest.resolve().is_relative_to(REPO) else args.dest
    print(f'staged {total / 2**20:.1f} MiB into {args.dest}; carry it with the run (carry: ["{shown}"])')


if __name__ == "__main__":
    main()
