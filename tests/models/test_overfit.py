"""The ray-lifting generator of ``experiment=demo_ray_lifting`` (its widths, optimizer and re-projection loss at
32^3) memorizes one phantom to bone Dice > 0.8: a model that cannot overfit one case cannot learn the spine (issue 8).

The voxel loss is MSE plus the bone-boundary term here: on this case they pass Dice 0.8 after about 650 steps, where
the demo's L1 alone was at 0.21 after 300 (the demo keeps L1, which generalizes better at its 12-epoch budget)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate

from x2ct.data.datamodule import X2CTDataModule
from x2ct.metrics.modern import DEFAULT_BONE_THRESHOLD_HU, dice
from x2ct.models.losses import generator_loss_terms
from x2ct.models.ray_lifting_generator import RayLiftingGenerator
from x2ct.prepare import prepare_from_config

CUBE = 32
N_CASES = 2  # both land in the training list
STEPS = 900  # Dice 0.76 at 500, 0.80 at 600, 0.84 at 800 steps (about 0.5 s per step on 2 cores)
REQUIRED_BONE_DICE = 0.8
LOSS = ("model.loss.reconstruction_kind=mse", "model.loss.bone=1.0")


@pytest.mark.full
def test_ray_lifting_generator_overfits_one_phantom_to_bone_dice_above_0_8(
    tmp_path: Path,
    compose_config: Callable[..., Any],
    compose_train_config: Callable[..., Any],
    tiny_prepare_overrides: tuple[str, ...],
) -> None:
    root = tmp_path / "phantoms"
    prepare = compose_config(
        "prepare", [*tiny_prepare_overrides, "source=phantom", f"source.n_cases={N_CASES}", f"out_dir={root}"]
    )
    assert prepare_from_config(prepare, progress=False) == 0
    overrides = ["experiment=demo_ray_lifting", f"data.root={root}", f"data.cube={CUBE}", *LOSS]
    config = compose_train_config(tmp_path / "run", overrides)
    datamodule = X2CTDataModule(root=root, cube=CUBE, val_fraction=0.0)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    views = [batch["proj_xray1"], batch["proj_xray2"]]

    torch.manual_seed(0)
    module = instantiate(config.model)
    generator = module.generator
    assert isinstance(generator, RayLiftingGenerator)
    optimizer = instantiate(config.model.optimizer_g)(generator.parameters())
    for _ in range(STEPS):
        fake = generator(batch["xray1"], batch["xray2"], *views)
        terms = generator_loss_terms(None, fake, batch["ct"], module.loss_weights, views)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()

    with torch.no_grad():
        fake = generator(batch["xray1"], batch["xray2"], *views)
    window = datamodule.window
    threshold = (DEFAULT_BONE_THRESHOLD_HU - window.low_hu) / window.width_hu
    real_bone = batch["ct"][0, 0].numpy() >= threshold
    fake_bone = fake[0, 0].clamp(0.0, 1.0).numpy() >= threshold
    assert real_bone.mean() > 0.01  # the phantom has bone to find
    assert dice(real_bone, fake_bone) > REQUIRED_BONE_DICE
