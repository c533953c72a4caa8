"""Killing ``x2ct-prepare`` (SIGKILL: no handler, no cleanup) while it writes a case leaves no half-written file under
a final name, and running it again completes the folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from x2ct.io.hdf5 import TRIPLET_FILENAME, validate_triplet

N_CASES = 4
POLL_S = 0.005  # how often the folder is looked at while waiting for a temporary file
START_TIMEOUT_S = 120.0  # the first temporary file must appear within this (imports + first phantom)
RUN_TIMEOUT_S = 300


def temporary_files(out_dir: Path) -> list[Path]:
    """Files written under a temporary name (``.<final name>.<random>.tmp...``)."""
    return [path for path in out_dir.rglob(".*") if path.is_file() and ".tmp" in path.name]


def test_sigkill_mid_write_leaves_only_valid_files_and_a_rerun_completes(
    tmp_path: Path, tiny_prepare_overrides: tuple[str, ...]
) -> None:
    out_dir = tmp_path / "out"
    args = [
        str(Path(sys.executable).parent / "x2ct-prepare"),
        "source=phantom",
        f"source.n_cases={N_CASES}",
        f"out_dir={out_dir}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *tiny_prepare_overrides,
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (out_dir.is_dir() and temporary_files(out_dir)):
            assert process.poll() is None, "x2ct-prepare ended before writing anything"
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(POLL_S)
        process.send_signal(signal.SIGKILL)  # while a file is being written under its temporary name
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finals = list(out_dir.glob(f"*/{TRIPLET_FILENAME}"))
    assert len(finals) < N_CASES  # the kill came before the end
    for path in finals:
        validate_triplet(path)  # every file under a final name is whole

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    cases = sorted(out_dir.glob(f"*/{TRIPLET_FILENAME}"))
    assert len(cases) == N_CASES
    for path in cases:
        validate_triplet(path)
    listed = (out_dir / "train.txt").read_text().split() + (out_dir / "test.txt").read_text().split()
    assert sorted(listed) == sorted(path.parent.name for path in cases)
