"""X2CT-GAN loss terms with their official weights."""

from __future__ import annotations

import pytest
import torch

from x2ct.models.losses import (
    LossWeights,
    discriminator_loss_terms,
    generator_loss_terms,
    lsgan_loss,
    projection_loss,
    reconstruction_loss,
)


def test_lsgan_targets() -> None:
    logits = torch.full((1, 1, 2, 2, 2), 0.25)
    assert lsgan_loss(logits, target_is_real=True).item() == pytest.approx(0.5625)
    assert lsgan_loss(logits, target_is_real=False).item() == pytest.approx(0.0625)


def test_reconstruction_kinds() -> None:
    real, fake = torch.zeros(1, 1, 2, 2, 2), torch.full((1, 1, 2, 2, 2), 0.5)
    assert reconstruction_loss(fake, real, "mse").item() == pytest.approx(0.25)
    assert reconstruction_loss(fake, real, "l1").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown reconstruction"):
        reconstruction_loss(fake, real, "huber")


def test_projection_loss_sees_each_axis() -> None:
    real = torch.zeros(1, 1, 4, 4, 4)
    fake = real.clone()
    fake[0, 0, 0, 0, 0] = 64.0  # a single voxel: mean along an axis of length 4 -> 16 on one pixel of 16
    # each axis: mean |proj| over the 16 pixels of the projection = 16 / 16 = 1
    assert projection_loss(fake, real).item() == pytest.approx(3.0)
    assert projection_loss(fake, real, axes=(2,)).item() == pytest.approx(1.0)
    shifted = torch.roll(fake, 1, dims=2)  # moving along D keeps the D projection
    assert projection_loss(shifted, fake, axes=(2,)).item() == 0.0
    assert projection_loss(shifted, fake, axes=(3,)).item() > 0.0


def test_weighted_terms_use_the_official_defaults() -> None:
    weights = LossWeights()
    real = torch.zeros(1, 1, 4, 4, 4)
    fake = torch.full_like(real, 0.5)
    g = generator_loss_terms(torch.zeros(1, 1, 2, 2, 2), fake, real, weights)
    assert g["adversarial"].item() == pytest.approx(0.1)
    assert g["reconstruction"].item() == pytest.approx(10 * 0.25)
    assert g["projection"].item() == pytest.approx(10 / 3 * 3 * 0.5)
    assert g["total"].item() == pytest.approx(0.1 + 2.5 + 5.0)
    d = discriminator_loss_terms(torch.ones(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2), weights)
    assert d["real"].item() == 0.0 and d["fake"].item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        LossWeights(adversarial=-1.0)
