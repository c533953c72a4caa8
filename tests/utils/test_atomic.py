"""Atomic writes: no half-written file under the final name, normal permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from x2ct.utils.atomic import atomic_output, atomic_write_text


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old_mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
