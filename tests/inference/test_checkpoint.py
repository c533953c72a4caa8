"""Loading x2ct-train checkpoints for inference: validation, data settings and the training spacing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from x2ct.data.datamodule import X2CTDataModule
from x2ct.data.normalization import CTWindow
from x2ct.inference.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    DataSettings,
    load_x2ct_checkpoint,
    training_data_info,
)
from x2ct.io.hdf5 import write_triplet

CUBE = 32  # the tiny checkpoint's cube (checked by the checkpoint_path fixture)


@pytest.fixture(scope="module")
def checkpoint_path(tiny_checkpoint: Any) -> Path:
    assert tiny_checkpoint.cube == CUBE
    return tiny_checkpoint.path


def test_loads_model_and_data_settings(checkpoint_path: Path, tiny_checkpoint: Any) -> None:
    loaded = load_x2ct_checkpoint(checkpoint_path)
    assert not loaded.model.training
    assert loaded.data.cube == CUBE and loaded.data.xray_size == CUBE
    assert (loaded.data.ct_window.low_hu, loaded.data.ct_window.high_hu) == (-1024.0, 1476.0)
    assert loaded.data.lateral_angle == 90.0 and loaded.data.from_checkpoint
    assert Path(loaded.data.data_root or "") == tiny_checkpoint.triplets
    saved = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    name = next(iter(saved))
    assert torch.equal(loaded.model.state_dict()[name], saved[name])  # the trained weights, not a fresh init


def test_training_spacing_and_xray_mode_come_from_the_triplets(checkpoint_path: Path, tiny_checkpoint: Any) -> None:
    info = training_data_info(load_x2ct_checkpoint(checkpoint_path).data)
    assert info is not None
    assert info.spacing_mm == tiny_checkpoint.spacing_mm and info.xray_mode == "aligned"


def test_training_spacing_is_rescaled_to_the_cube(tmp_path: Path) -> None:
    stored = 64
    (tmp_path / "c0").mkdir()
    hu = np.zeros((stored, stored, stored), np.float32)
    xray = np.zeros((stored, stored), np.uint8)
    write_triplet(tmp_path / "c0" / "ct_xray_data.h5", hu, xray, {90.0: xray}, attrs={"spacing_mm": [1.0, 2.0, 1.0]})
    (tmp_path / "train.txt").write_text("c0\n")
    settings = DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow(), data_root=str(tmp_path))
    info = training_data_info(settings)
    assert info is not None and info.spacing_mm is not None
    # Corner-aligned resampling keeps the first and last voxel centres: 63 intervals become 31.
    np.testing.assert_allclose(info.spacing_mm, np.array([1.0, 2.0, 1.0]) * 63 / 31)


def test_unreachable_training_data_gives_no_info(tmp_path: Path) -> None:
    settings = DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow(), data_root=str(tmp_path / "gone"))
    assert training_data_info(settings) is None
    assert training_data_info(DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow())) is None


def test_triplets_without_spacing_give_none(tmp_path: Path, write_tiny_triplets: Callable[..., Path]) -> None:
    root = write_tiny_triplets(tmp_path, n_train=2, n_test=1, cube=CUBE)  # no spacing_mm attribute
    with h5py.File(root / "case00" / "ct_xray_data.h5", "r") as h5:
        assert "spacing_mm" not in h5.attrs
    info = training_data_info(DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow(), data_root=str(root)))
    assert info is not None and info.spacing_mm is None and info.xray_mode is None


def test_checkpoint_without_data_settings_uses_the_generator_cube(
    checkpoint_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    del checkpoint["datamodule_hyper_parameters"]
    path = tmp_path / "no_data.ckpt"
    torch.save(checkpoint, path)
    with caplog.at_level(logging.WARNING):
        loaded = load_x2ct_checkpoint(path)
    assert loaded.data.cube == CUBE and not loaded.data.from_checkpoint and loaded.data.data_root is None
    assert "no data-module settings" in caplog.text


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"missing\.ckpt does not exist"):
        load_x2ct_checkpoint(tmp_path / "missing.ckpt")
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes\.ckpt is not a PyTorch checkpoint \(it starts with b'not '"):
        load_x2ct_checkpoint(path)


def test_empty_and_truncated_checkpoints_say_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt is empty \(0 bytes\)"):
        load_x2ct_checkpoint(empty)
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.ones(4096)}}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt is truncated \(an incomplete zip archive"):
        load_x2ct_checkpoint(truncated)


def test_plain_state_dict_is_rejected(tmp_path: Path, tiny_gan_module: Callable[..., Any]) -> None:
    path = tmp_path / "weights.pt"
    torch.save(tiny_gan_module(CUBE).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"not a Lightning checkpoint.*plain state dict"):
        load_x2ct_checkpoint(path)


def test_checkpoint_of_another_module_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    other = {
        "pytorch-lightning_version": "2.6.0",
        "state_dict": {"classifier.weight": torch.zeros(2, 3)},
        "hyper_parameters": {"num_classes": 2},
    }
    torch.save(other, path)
    with pytest.raises(CheckpointError, match=r"not an X2CT-GAN checkpoint.*'generator', 'discriminator'"):
        load_x2ct_checkpoint(path)


class Payload:
    """An arbitrary pickled object: weights_only loading must refuse to build it."""


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"unsafe\.ckpt: refused: .*references .*Payload"):
        load_x2ct_checkpoint(path)


def test_weights_that_do_not_fit_the_networks(checkpoint_path: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    checkpoint["hyper_parameters"]["generator"]["encoder_channels"] = 16
    path = tmp_path / "mismatch.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="cannot be rebuilt from its hyper-parameters and weights"):
        load_x2ct_checkpoint(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a CUDA device")
def test_cuda_without_a_device(checkpoint_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no CUDA device"):
        load_x2ct_checkpoint(checkpoint_path, device="cuda")


def test_every_case_list_reader_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    """The data module and the training-spacing reader parse train.txt alike: ``#`` lines and blank lines are not
    cases, even when a folder happens to carry the commented line's name."""
    xray = np.zeros((CUBE, CUBE), np.uint8)
    for case_id, spacing in (("c0", [1.0, 1.0, 1.0]), ("#c1", [3.0, 3.0, 3.0])):
        (tmp_path / case_id).mkdir()
        hu = np.zeros((CUBE, CUBE, CUBE), np.float32)
        write_triplet(tmp_path / case_id / "ct_xray_data.h5", hu, xray, {90.0: xray}, attrs={"spacing_mm": spacing})
    (tmp_path / "train.txt").write_text("# training cases\n\nc0\n#c1\n   \n")
    assert X2CTDataModule(tmp_path, cube=CUBE, val_fraction=0.0).splits.train == ["c0"]
    info = training_data_info(DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow(), data_root=str(tmp_path)))
    assert info is not None and info.spacing_mm == (1.0, 1.0, 1.0)
    assert info.source == tmp_path / "c0" / "ct_xray_data.h5"


@pytest.mark.parametrize("bad", [[1.0, 1.0], [np.inf, 1.0, 1.0]])
def test_unusable_training_spacing_is_ignored_with_a_warning(
    bad: list[float], tmp_path: Path, write_tiny_triplets: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The prediction side checks a triplet's spacing like every other reader (x2ct.io.hdf5.parse_spacing)."""
    root = write_tiny_triplets(tmp_path, n_train=1, n_test=1, cube=CUBE)
    with h5py.File(root / "case00" / "ct_xray_data.h5", "a") as h5:
        h5.attrs["spacing_mm"] = np.array(bad)
        h5.attrs["xray_mode"] = "aligned"
    with caplog.at_level(logging.WARNING):
        info = training_data_info(DataSettings(cube=CUBE, xray_size=CUBE, ct_window=CTWindow(), data_root=str(root)))
    assert info is not None and info.spacing_mm is None and info.xray_mode == "aligned"
    assert "case00" in caplog.text and "spacing_mm" in caplog.text
