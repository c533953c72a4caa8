"""X2CT-GAN loss terms with their official weights."""

from __future__ import annotations

import pytest
import torch

from x2ct.models.losses import (
    LossWeights,
    bone_boundary_loss,
    discriminator_loss_terms,
    generator_loss_terms,
    lsgan_loss,
    point_loss_terms,
    projection_loss,
    reconstruction_loss,
    reprojection_loss,
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


def _aligned_views(n: int) -> list[torch.Tensor]:
    ap = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    lateral = torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return [ap[None].expand(n, 3, 4).clone(), lateral[None].expand(n, 3, 4).clone()]


def test_reprojection_loss_is_zero_for_the_truth_and_its_gradient_reaches_the_volume() -> None:
    torch.manual_seed(0)
    real = torch.rand(2, 1, 8, 8, 8)
    views = _aligned_views(2)
    assert float(reprojection_loss(real, real, views, detector_size=8, n_samples=8)) == 0.0
    fake = (real + 0.1 * torch.randn_like(real)).requires_grad_(True)
    loss = reprojection_loss(fake, real, views, detector_size=8, n_samples=8)
    # aligned parallel views at n_samples = edge: the mean of |2 mean_H(fake - real)| and |2 mean_W(fake - real)|
    expected = ((2 * (fake - real).mean(3)).abs().mean() + (2 * (fake - real).mean(4)).abs().mean()) / 2
    assert torch.isclose(loss, expected, atol=1e-5)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_generator_terms_include_the_weighted_reprojection_with_extra_views() -> None:
    torch.manual_seed(0)
    real, fake = torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8)
    logits = torch.zeros(1, 1, 2, 2, 2)
    weights = LossWeights(reprojection=2.0, reprojection_detector=8, reprojection_samples=8)
    terms = generator_loss_terms(logits, fake, real, weights, _aligned_views(1))
    plain = reprojection_loss(fake, real, _aligned_views(1), detector_size=8, n_samples=8)
    assert torch.isclose(terms["reprojection"], 2.0 * plain)
    assert torch.isclose(terms["total"], sum(v for k, v in terms.items() if k != "total"))
    extra = LossWeights(reprojection=2.0, reprojection_detector=8, reprojection_samples=8, reprojection_extra_views=2)
    assert not torch.isclose(
        generator_loss_terms(logits, fake, real, extra, _aligned_views(1))["reprojection"], terms["reprojection"]
    )
    with pytest.raises(ValueError, match="projection matrices"):
        generator_loss_terms(logits, fake, real, weights)
    assert "reprojection" not in generator_loss_terms(logits, fake, real, LossWeights())


def _volume_with_bone(bone_value: float, soft_value: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """(volume, bone mask): a 8^3 block of ``soft_value`` with a 4^3 cube of ``bone_value`` in it (N=1, C=1)."""
    volume = torch.full((1, 1, 8, 8, 8), soft_value)
    mask = torch.zeros_like(volume, dtype=torch.bool)
    mask[..., 2:6, 2:6, 2:6] = True
    return volume.masked_fill(mask, bone_value), mask


def test_bone_threshold_is_placed_on_the_unit_scale_through_the_ct_window() -> None:
    weights = LossWeights(bone=1.0)
    assert weights.bone_threshold == pytest.approx((250.0 + 1024.0) / 2500.0)
    assert weights.bone_softness == pytest.approx(50.0 / 2500.0)
    other = LossWeights(bone=1.0, bone_threshold_hu=400.0, ct_window_hu=(-1000.0, 1000.0))
    assert other.bone_threshold == pytest.approx(0.7)
    with pytest.raises(ValueError, match="inside the CT window"):
        LossWeights(bone_threshold_hu=2000.0)
    with pytest.raises(ValueError, match="bone_softness_hu"):
        LossWeights(bone_softness_hu=0.0)


def test_bone_boundary_loss_punishes_bone_on_the_wrong_side_of_the_threshold_and_pulls_it_across() -> None:
    weights = LossWeights(bone=1.0)
    real, mask = _volume_with_bone(0.8)
    threshold, softness = weights.bone_threshold, weights.bone_softness
    right = bone_boundary_loss(real, real, threshold, softness)
    assert right < 1e-3  # every voxel many softness units on its right side
    blurred = real.clone().masked_fill(mask, threshold - 2 * softness).requires_grad_()  # bone predicted too dark
    wrong = bone_boundary_loss(blurred, real, threshold, softness)
    assert wrong > 100 * right
    (grad,) = torch.autograd.grad(wrong, blurred)
    assert (grad[mask] < 0).all()  # descending raises the bone voxels towards the threshold
    assert grad[~mask].abs().max() < grad[mask].abs().min()


def test_generator_terms_add_the_weighted_bone_term_only_when_asked() -> None:
    real, _ = _volume_with_bone(0.8)
    fake = real * 0.6
    without = generator_loss_terms(None, fake, real, LossWeights(adversarial=0.0))
    assert "bone" not in without
    weights = LossWeights(adversarial=0.0, bone=2.5)
    terms = generator_loss_terms(None, fake, real, weights)
    expected = 2.5 * bone_boundary_loss(fake, real, weights.bone_threshold, weights.bone_softness)
    assert terms["bone"] == pytest.approx(float(expected))
    assert terms["total"] == pytest.approx(float(without["total"] + expected))


def test_point_loss_terms_are_the_voxel_terms_at_the_sampled_points() -> None:
    target = torch.tensor([[0.0, 0.2, 0.7, 0.9]])
    weights = LossWeights(reconstruction=10.0, bone=0.5)
    same = point_loss_terms(target.clone(), target, weights)
    assert same["reconstruction"] == 0.0
    predicted = target + torch.tensor([[0.1, 0.0, 0.0, -0.1]])
    terms = point_loss_terms(predicted, target, weights)
    assert terms["reconstruction"].item() == pytest.approx(10.0 * 0.02 / 4)
    assert terms["bone"].item() == pytest.approx(
        0.5 * bone_boundary_loss(predicted, target, weights.bone_threshold, weights.bone_softness).item()
    )
    assert terms["total"] == terms["reconstruction"] + terms["bone"]
    assert "bone" not in point_loss_terms(predicted, target, LossWeights())
