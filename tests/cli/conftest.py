"""Running a console script in-process, checking its one-line error, and broken input files to feed it.

``run_cli(main, *args)`` calls an entry point's ``main()`` with ``sys.argv`` set (cwd: a fresh folder, no
``HYDRA_FULL_ERROR``) and returns its exit status, stdout and stderr; ``expect_one_line_error(run, command,
*needles)`` checks a non-zero exit, exactly one ``<command>: error:`` line on stderr naming every needle, nothing
else on stderr but progress bars, and no traceback.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

TRUNCATED_BYTES = 4096  # what is left of a truncated file
# A progress bar line (tqdm writes them to stderr): "<desc>:  40%|####  | 2/5 [..]" or "<desc>: 0case [..]".
PROGRESS_LINE = re.compile(r"^[\w ]+: +(\d+%\||\d+\w* \[)")


@dataclass(frozen=True)
class CliRun:
    """What one run of a console script did."""

    status: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., CliRun]:
    """``(main, *args) -> CliRun``: the console script ``main`` run in-process with ``args`` as its command line."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(main: Callable[[], Any], *args: str) -> CliRun:
        monkeypatch.setattr(sys, "argv", ["x2ct-test", *args])
        capsys.readouterr()
        try:
            main()
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        out, err = capsys.readouterr()
        return CliRun(status, out, err)

    return run


@pytest.fixture(scope="session")
def expect_one_line_error() -> Callable[..., str]:
    """``(run, command, *needles) -> the error line``, checking the one-line error contract (module docstring)."""

    def check(run: CliRun, command: str, *needles: str) -> str:
        assert run.status != 0, f"exit status 0; stdout: {run.stdout[-2000:]}"
        assert "Traceback" not in run.stderr + run.stdout, run.stderr
        prefix = f"{command}: error: "
        lines = [line for chunk in run.stderr.splitlines() for line in chunk.split("\r") if line.strip()]
        errors = [line for line in lines if line.startswith(prefix)]
        assert len(errors) == 1, f"expected one '{prefix}' line, stderr:\n{run.stderr}"
        others = [line for line in lines if line not in errors and not PROGRESS_LINE.match(line)]
        assert not others, f"stderr holds more than the error line: {others}"
        for needle in needles:
            assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
        return errors[0]

    return check


@pytest.fixture(scope="session")
def broken_checkpoints(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint files that are no usable x2ct-train checkpoint: ``truncated`` (the first bytes of a real one),
    ``text`` (a text file), ``state_dict`` (a plain state dict: the weights only), ``image`` (a PNG file)."""
    folder = tmp_path_factory.mktemp("broken_checkpoints")
    truncated = folder / "truncated.ckpt"
    truncated.write_bytes(tiny_checkpoint.path.read_bytes()[:TRUNCATED_BYTES])
    text = folder / "text.ckpt"
    text.write_text("this is not a checkpoint\n")
    state_dict = folder / "weights.ckpt"
    torch.save(torch.load(tiny_checkpoint.path, weights_only=True)["state_dict"], state_dict)
    image = folder / "picture.ckpt"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return {"truncated": truncated, "text": text, "state_dict": state_dict, "image": image}


@pytest.fixture(scope="session")
def truncated_triplets(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the tiny checkpoint's triplet folder whose first test case's HDF5 file is cut short: (root, the
    truncated file)."""
    root = tmp_path_factory.mktemp("truncated_triplets") / "triplets"
    shutil.copytree(tiny_checkpoint.triplets, root)
    case_id = (root / "test.txt").read_text().split()[0]
    file = root / case_id / "ct_xray_data.h5"
    file.write_bytes(file.read_bytes()[:TRUNCATED_BYTES])
    return root, file
