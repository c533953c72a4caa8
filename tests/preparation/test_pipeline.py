"""The preparation pipeline end to end on tiny phantoms and NIfTI pairs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from x2ct.io.hdf5 import read_triplet
from x2ct.phantom import make_phantom
from x2ct.preparation.pipeline import (
    CaseResult,
    build_views,
    read_manifest,
    split_cases,
    triplet_path,
)
from x2ct.prepare import prepare_from_config

N_PHANTOMS = 5


Prepare = Callable[..., int]


@pytest.fixture(scope="module")
def prepare(compose_config: Callable[..., Any], tiny_prepare_overrides: tuple[str, ...]) -> Prepare:
    """``(out_dir, *overrides) -> exit status`` of x2ct-prepare's config with the tiny settings."""

    def run(out_dir: Path, *extra: str) -> int:
        cfg = compose_config("prepare", [*tiny_prepare_overrides, f"out_dir={out_dir}", *extra])
        return prepare_from_config(cfg, progress=False)

    return run


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory: pytest.TempPathFactory, prepare: Prepare) -> Path:
    out_dir = tmp_path_factory.mktemp("phantoms")
    assert prepare(out_dir, "source=phantom", f"source.n_cases={N_PHANTOMS}") == 0
    return out_dir


def test_phantom_run_writes_contract_files(phantom_run: Path) -> None:
    train = (phantom_run / "train.txt").read_text().split()
    test = (phantom_run / "test.txt").read_text().split()
    assert len(test) == 1 and len(train) == N_PHANTOMS - 1
    assert sorted(train + test) == [f"phantom_{i:04d}" for i in range(N_PHANTOMS)]
    rows = read_manifest(phantom_run / "manifest.csv")
    assert [r["status"] for r in rows] == ["ok"] * N_PHANTOMS
    assert {r["split"] for r in rows} == {"train", "test"}
    assert len(list((phantom_run / "previews").glob("*.png"))) == 1
    with h5py.File(triplet_path(phantom_run, "phantom_0000"), "r") as f:
        assert {"ct", "xray1", "xray2", "xray2_085", "xray2_080", "xray2_075"} <= set(f.keys())
        assert f["ct"].shape == (32, 32, 32)
        assert f["xray1"].dtype == np.uint8 and f["xray1"].shape == (32, 32)
        assert not list(phantom_run.rglob("*.tmp*"))


def _best_shift(image: np.ndarray, projection: np.ndarray, max_shift: int = 4) -> tuple[int, int]:
    """The integer (row, column) shift of ``projection`` that correlates best with ``image``."""
    scores = {}
    for dr in range(-max_shift, max_shift + 1):
        for dc in range(-max_shift, max_shift + 1):
            shifted = np.roll(projection, (dr, dc), axis=(0, 1))[max_shift:-max_shift, max_shift:-max_shift]
            crop = image[max_shift:-max_shift, max_shift:-max_shift].astype(float)
            scores[dr, dc] = np.corrcoef(crop.ravel(), shifted.ravel())[0, 1]
    return max(scores, key=scores.get)


def test_triplet_is_aligned_with_ct(phantom_run: Path) -> None:
    """The stored AP view lines up with the CT's mean along H, the lateral with the mean along W."""
    triplet = read_triplet(triplet_path(phantom_run, "phantom_0001"), lateral_angle=90)
    ct = triplet.ct_hu_plus_1024
    ap, lateral = ct.mean(axis=1), ct.mean(axis=2)
    assert np.corrcoef(triplet.xray1.ravel().astype(float), ap.ravel())[0, 1] > 0.6
    assert np.corrcoef(triplet.xray2.ravel().astype(float), lateral.ravel())[0, 1] > 0.6
    assert _best_shift(triplet.xray1, ap) == (0, 0)
    assert _best_shift(triplet.xray2, lateral) == (0, 0)


def test_rerun_skips_finished_cases(phantom_run: Path, prepare: Prepare) -> None:
    path = triplet_path(phantom_run, "phantom_0002")
    before = path.stat().st_mtime_ns
    train_before = (phantom_run / "train.txt").read_text()
    assert prepare(phantom_run, "source=phantom", f"source.n_cases={N_PHANTOMS}") == 0
    assert path.stat().st_mtime_ns == before
    assert {r["status"] for r in read_manifest(phantom_run / "manifest.csv")} == {"exists"}
    assert (phantom_run / "train.txt").read_text() == train_before


def test_invalid_leftover_is_rebuilt(tmp_path: Path, prepare: Prepare) -> None:
    path = triplet_path(tmp_path, "phantom_0000")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an hdf5 file")
    assert prepare(tmp_path, "source=phantom", "source.n_cases=1") == 0
    assert read_triplet(path).xray1.shape == (32, 32)
    assert read_manifest(tmp_path / "manifest.csv")[0]["status"] == "ok"


@pytest.fixture
def pairs_root(tmp_path: Path, write_nifti_pair: Callable[..., tuple[Path, Path]]) -> Path:
    """Two good NIfTI pairs and three bad ones (shape mismatch, empty mask, unreadable CT)."""
    root = tmp_path / "pairs"
    for i in range(2):
        vol = make_phantom(seed=100 + i)
        write_nifti_pair(root, f"good{i}", vol.hu, vol.labels, vol.affine)
    vol = make_phantom(seed=7)
    _, mask_path = write_nifti_pair(root, "mismatch", vol.hu, vol.labels, vol.affine)
    write_nifti_pair(root, "tmp", vol.hu[:-3], vol.labels[:-3], vol.affine)
    os.replace(root / "tmp_seg.nii.gz", mask_path)
    (root / "tmp_ct.nii.gz").unlink()
    write_nifti_pair(root, "empty", vol.hu, np.zeros_like(vol.labels), vol.affine)
    write_nifti_pair(root, "garbage", vol.hu, vol.labels, vol.affine)
    (root / "garbage_ct.nii.gz").write_bytes(b"definitely not gzip")
    return root


def test_bad_cases_are_recorded_and_fail_the_run(pairs_root: Path, tmp_path: Path, prepare: Prepare) -> None:
    out_dir = tmp_path / "out"
    status = prepare(out_dir, "source=pairs", f"source.root={pairs_root}")
    assert status == 1
    rows = {r["case_id"]: r for r in read_manifest(out_dir / "manifest.csv")}
    assert set(rows) == {"good0", "good1", "mismatch", "empty", "garbage"}
    assert rows["good0"]["status"] == rows["good1"]["status"] == "ok"
    for bad, word in (("mismatch", "shape"), ("empty", "empty"), ("garbage", "garbage_ct.nii.gz")):
        assert rows[bad]["status"] == "failed"
        assert word in rows[bad]["reason"], rows[bad]["reason"]
        assert not triplet_path(out_dir, bad).exists()
    listed = (out_dir / "train.txt").read_text().split() + (out_dir / "test.txt").read_text().split()
    assert sorted(listed) == ["good0", "good1"]
    assert prepare(out_dir, "source=pairs", f"source.root={pairs_root}", "allow_failures=true") == 0


def test_paper_mode_and_custom_angles(tmp_path: Path, prepare: Prepare) -> None:
    status = prepare(
        tmp_path,
        "source=phantom",
        "source.n_cases=1",
        "xray=paper",
        "xray.size=48",
        "lateral_angles=[90,60]",
        "drr=slicer",
    )
    assert status == 0
    with h5py.File(triplet_path(tmp_path, "phantom_0000"), "r") as f:
        assert set(f.keys()) >= {"ct", "xray1", "xray2", "xray2_060"}
        assert f["xray1"].shape == (48, 48) and f["xray2_060"].shape == (48, 48)
        assert f["xray1"][()].max() == 255


def test_split_is_reproducible_and_honours_dataset_split() -> None:
    results = [
        CaseResult(case_id=f"c{i:02d}", status="ok", dataset_split="test" if i % 3 == 0 else "train") for i in range(20)
    ]
    train_a, test_a = split_cases(results, 0.2, seed=1, use_dataset_split=False)
    train_b, test_b = split_cases(list(reversed(results)), 0.2, seed=1, use_dataset_split=False)
    assert (train_a, test_a) == (train_b, test_b) and len(test_a) == 4
    assert split_cases(results, 0.2, seed=2, use_dataset_split=False)[1] != test_a
    _, test = split_cases(results, 0.2, seed=1, use_dataset_split=True)
    assert test == [f"c{i:02d}" for i in range(0, 20, 3)]
    with pytest.raises(ValueError, match="no split"):
        split_cases([CaseResult(case_id="x", status="ok")], 0.2, seed=1, use_dataset_split=True)


def test_views_follow_the_hdf5_names() -> None:
    names = [v.name for v in build_views([90, 85, 80, 75])]
    assert names == ["xray1", "xray2", "xray2_085", "xray2_080", "xray2_075"]
    with pytest.raises(ValueError, match="duplicates"):
        build_views([90, 90])


@pytest.mark.slow
def test_console_script_with_two_workers(tmp_path: Path, tiny_prepare_overrides: tuple[str, ...]) -> None:
    """The installed ``x2ct-prepare`` command, two worker processes, non-zero exit on a bad source."""
    exe = Path(sys.executable).parent / "x2ct-prepare"
    out_dir = tmp_path / "cli"
    args = [
        str(exe),
        "source=phantom",
        "source.n_cases=4",
        f"out_dir={out_dir}",
        "workers=2",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *[o for o in tiny_prepare_overrides if not o.startswith("workers")],
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 prepared" in done.stdout
    assert len(list(out_dir.glob("*/ct_xray_data.h5"))) == 4
    bad = subprocess.run(
        [
            str(exe),
            "source=ctspine1k",
            f"source.root={tmp_path / 'nowhere'}",
            f"out_dir={out_dir}",
            f"hydra.run.dir={tmp_path / 'hydra2'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "nowhere" in bad.stdout + bad.stderr


def test_rerun_rebuilds_cases_whose_settings_changed(tmp_path: Path, prepare: Prepare) -> None:
    """A new lateral angle (or any setting that shapes a file) rebuilds the case; the same settings skip it."""
    angles = "lateral_angles=[90]"
    assert prepare(tmp_path, "source=phantom", "source.n_cases=2", angles) == 0
    path = triplet_path(tmp_path, "phantom_0000")
    with h5py.File(path, "r") as f:
        assert "xray2_085" not in f
    assert prepare(tmp_path, "source=phantom", "source.n_cases=2", "lateral_angles=[90,85]") == 0
    with h5py.File(path, "r") as f:
        assert "xray2_085" in f
    rows = read_manifest(tmp_path / "manifest.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["reason"] == "rebuilt: settings changed (lateral_angles)" for r in rows), rows
    before = path.stat().st_mtime_ns
    assert prepare(tmp_path, "source=phantom", "source.n_cases=2", "lateral_angles=[90,85]") == 0
    assert path.stat().st_mtime_ns == before
    assert [r["status"] for r in read_manifest(tmp_path / "manifest.csv")] == ["exists", "exists"]
    assert (
        prepare(tmp_path, "source=phantom", "source.n_cases=2", "lateral_angles=[90,85]", "drr.geometry=parallel") == 0
    )
    reasons = {r["reason"] for r in read_manifest(tmp_path / "manifest.csv")}
    assert reasons == {"rebuilt: settings changed (drr.geometry)"}


def test_file_without_fingerprint_is_rebuilt(tmp_path: Path, prepare: Prepare) -> None:
    """Files of an older x2ct-prepare (no settings fingerprint) are rebuilt, not trusted."""
    assert prepare(tmp_path, "source=phantom", "source.n_cases=1", "lateral_angles=[90]") == 0
    path = triplet_path(tmp_path, "phantom_0000")
    with h5py.File(path, "a") as f:
        for name in [n for n in f.attrs if n.startswith("prepare.")]:
            del f.attrs[name]
    assert prepare(tmp_path, "source=phantom", "source.n_cases=1", "lateral_angles=[90]") == 0
    row = read_manifest(tmp_path / "manifest.csv")[0]
    assert row["status"] == "ok" and row["reason"].startswith("rebuilt: no settings fingerprint"), row
    with h5py.File(path, "r") as f:
        assert "prepare.fingerprint" in f.attrs
