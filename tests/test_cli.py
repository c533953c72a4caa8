"""User mistakes end a console script with one line on stderr and exit status 2; bugs keep their traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from x2ct.cli import EXIT_USER_ERROR, report_user_errors
from x2ct.errors import InvalidOptionError


def _failing(error: Exception):
    @report_user_errors("x2ct-test")
    def task() -> None:
        raise error

    return task


def test_a_user_error_is_one_line_and_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        _failing(InvalidOptionError("data.cube must be a positive integer, got -1\nsecond line"))()
    assert stop.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err == "x2ct-test: error: data.cube must be a positive integer, got -1\n"


def test_a_user_error_wrapped_by_hydra_instantiate_is_found_in_the_causes(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise InvalidOptionError("bad range")
    except InvalidOptionError as cause:
        wrapped = RuntimeError("Error in call to target 'X2CTDataModule'")
        wrapped.__cause__ = cause
    with pytest.raises(SystemExit):
        _failing(wrapped)()
    assert capsys.readouterr().err == "x2ct-test: error: bad range\n"


def test_bugs_and_full_error_keep_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyError):
        _failing(KeyError("a bug"))()
    with pytest.raises(ValueError, match="plain"):  # a ValueError that is not a UserError is a bug too
        _failing(ValueError("plain"))()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(InvalidOptionError):
        _failing(InvalidOptionError("shown with its traceback"))()


def test_x2ct_train_with_a_wrong_data_root(tmp_path: Path) -> None:
    """Through the real console script: one line naming the folder, exit 2, no traceback."""
    exe = Path(sys.executable).parent / "x2ct-train"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYDRA_FULL_ERROR"))}
    missing = tmp_path / "no_such_folder"
    done = subprocess.run(
        [str(exe), f"data.root={missing}", f"hydra.run.dir={tmp_path / 'run'}", "data.cube=32"],
        capture_output=True,
        text=True,
        env=env | {"WANDB_MODE": "disabled"},
        timeout=120,
    )
    assert done.returncode == EXIT_USER_ERROR
    assert f"x2ct-train: error: data root {missing} does not exist" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
