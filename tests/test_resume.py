"""Crash safety of ``x2ct-train``: killing a run and resuming from ``last.ckpt`` (or from a checkpoint saved in the
middle of an epoch) ends with the same weights as the uninterrupted run of the same seed.

The runs exercise every random source training has: dropout (the paper generator's Connection-A), the data order,
the augmentation (flip, gamma, noise) and the random lateral-angle draw (two stored lateral views per case).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import lightning as L
import pytest
import torch

from x2ct.io.hdf5 import lateral_key
from x2ct.train import train

ComposeTrain = Callable[..., Any]
EXTRA_LATERAL_ANGLE = 75  # a second stored lateral view, so that the random angle draw matters
BATCHES_PER_EPOCH = 3  # the 3 training cases of the 25% hold-out of 4, batch size 1
KILL_AT_BATCH = 1  # the batch of the second epoch during which the "kill" strikes


class SimulatedKill(RuntimeError):
    """Raised by :class:`KillAt` to stop training abruptly (no hook saves anything after it)."""


class KillAt(L.Callback):
    """Raises :class:`SimulatedKill` at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if trainer.current_epoch == self.epoch and idx == self.batch:
            raise SimulatedKill(f"killed at epoch {self.epoch}, batch {self.batch}")


@pytest.fixture(scope="module")
def two_angle_triplets(tiny_triplets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny triplets with a second lateral view (the 90-degree one mirrored) stored at 75 degrees."""
    root = tmp_path_factory.mktemp("two_angles") / "data"
    shutil.copytree(tiny_triplets, root)
    for path in root.glob("*/ct_xray_data.h5"):
        with h5py.File(path, "r+") as h5:
            h5[lateral_key(EXTRA_LATERAL_ANGLE)] = h5[lateral_key(90)][()][:, ::-1]
    return root


@pytest.fixture(scope="module")
def overrides(two_angle_triplets: Path, tiny_train_overrides_for: Callable[..., tuple[str, ...]]) -> list[str]:
    """Tiny paper model (with dropout), angle-randomized training, every augmentation, checkpoints every epoch."""
    return [
        f"data.root={two_angle_triplets}",
        *tiny_train_overrides_for(generator="biplanar"),
        f"data.train_lateral_angles=[{EXTRA_LATERAL_ANGLE},90]",
        "data.augment={flip_lr: 0.5, xray_gamma: [0.8, 1.2], xray_noise_std: 0.02}",
        "trainer.limit_val_batches=1",
        "callbacks.media=null",
    ]


def generator_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The generator's tensors in ``<run_dir>/checkpoints/last.ckpt``."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {name: value for name, value in state.items() if name.startswith("generator.")}


def assert_identical(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    worst = max((expected[k] - actual[k]).abs().max().item() for k in expected)
    assert worst == 0.0, f"generator weights differ by up to {worst:.3g}"


@pytest.fixture(scope="module")
def uninterrupted(overrides: list[str], compose_train_config: ComposeTrain, tmp_path_factory: pytest.TempPathFactory):
    """Generator weights after 2 uninterrupted epochs."""
    run = tmp_path_factory.mktemp("uninterrupted")
    train(compose_train_config(run, [*overrides, "trainer.max_epochs=2"]))
    return generator_weights(run)


def test_resume_at_an_epoch_boundary_is_identical(
    overrides: list[str], uninterrupted: dict[str, torch.Tensor], compose_train_config: ComposeTrain, tmp_path: Path
) -> None:
    """1 epoch, then resumed from its last.ckpt to 2 epochs == 2 epochs in one go."""
    train(compose_train_config(tmp_path / "first", [*overrides, "trainer.max_epochs=1"]))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    train(compose_train_config(tmp_path / "second", [*overrides, "trainer.max_epochs=2", f"ckpt_path={last}"]))
    assert_identical(uninterrupted, generator_weights(tmp_path / "second"))


@pytest.mark.full  # about 10 s on 2 CPU cores, beside the uninterrupted run shared with the fast test
def test_killed_mid_epoch_then_resumed_from_last_ckpt_is_identical(
    overrides: list[str],
    uninterrupted: dict[str, torch.Tensor],
    compose_train_config: ComposeTrain,
    tmp_path: Path,
) -> None:
    """A run killed in the middle of its second epoch (after the first epoch's last.ckpt, with batches of the second
    epoch already trained), resumed from last.ckpt, ends where the uninterrupted run ends."""
    kill = f"+callbacks.kill={{_target_: {__name__}.KillAt, epoch: 1, batch: {KILL_AT_BATCH}}}"
    with pytest.raises(SimulatedKill):
        train(compose_train_config(tmp_path / "killed", [*overrides, "trainer.max_epochs=2", kill]))
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the kill came after epoch 0's checkpoint
    train(compose_train_config(tmp_path / "resumed", [*overrides, "trainer.max_epochs=2", f"ckpt_path={last}"]))
    assert_identical(uninterrupted, generator_weights(tmp_path / "resumed"))


@pytest.mark.full  # about 10 s on 2 CPU cores, beside the uninterrupted run shared with the fast test
def test_resume_from_a_checkpoint_saved_mid_epoch_is_identical(
    overrides: list[str], uninterrupted: dict[str, torch.Tensor], compose_train_config: ComposeTrain, tmp_path: Path
) -> None:
    """A checkpoint saved after every batch; resuming from the one saved after the first batch of the second epoch
    skips the batch already trained and restores the random states of that moment."""
    steps = tmp_path / "steps"
    every_batch = (
        f"+callbacks.every_batch={{_target_: lightning.pytorch.callbacks.ModelCheckpoint, dirpath: {steps}, "
        "every_n_train_steps: 1, save_top_k: -1, filename: 'epoch{epoch}-step{step}', auto_insert_metric_name: false}"
    )
    train(compose_train_config(tmp_path / "first", [*overrides, "trainer.max_epochs=2", every_batch]))
    saved = {path: torch.load(path, weights_only=True) for path in sorted(steps.glob("*.ckpt"))}
    position = {path: (c["epoch"], c.get("X2CTDataModule", {}).get("batches_done")) for path, c in saved.items()}
    mid_epoch = [path for path, where in position.items() if where == (1, KILL_AT_BATCH)]
    assert len(mid_epoch) == 1, position
    resumed = [*overrides, "trainer.max_epochs=2", f"ckpt_path={mid_epoch[0]}"]
    train(compose_train_config(tmp_path / "resumed", resumed))
    assert_identical(uninterrupted, generator_weights(tmp_path / "resumed"))
