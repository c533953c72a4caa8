"""X2CT-GAN losses (reference section 2): LSGAN adversarial, voxel reconstruction and projection losses.

Volumes are (N, 1, D, H, W) in the model's [0, 1] scale; discriminator outputs are patch maps (N, 1, P, P, P).
Generator:     w_adv * mean((D(x, fake) - 1)^2) + w_rec * rec(fake, real)
               + w_proj * sum_{axis in D,H,W} mean|mean_axis(fake) - mean_axis(real)|
Discriminator: w_adv * [mean((D(x, real) - 1)^2) + mean(D(x, fake.detach())^2)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

REAL_TARGET: float = 1.0
FAKE_TARGET: float = 0.0
VOLUME_AXES: tuple[int, int, int] = (2, 3, 4)  # D, H, W of (N, C, D, H, W)
RECONSTRUCTION_KINDS: tuple[str, ...] = ("mse", "l1")


def lsgan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean((logits - target)^2) with target 1 (real) or 0 (fake)."""
    target = REAL_TARGET if target_is_real else FAKE_TARGET
    return (logits - target).pow(2).mean()


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Voxel-wise MSE (official default) or L1 between the volumes."""
    if kind == "mse":
        return F.mse_loss(fake, real)
    if kind == "l1":
        return F.l1_loss(fake, real)
    raise ValueError(f"unknown reconstruction loss {kind!r}; expected one of {RECONSTRUCTION_KINDS}")


def projection_loss(fake: torch.Tensor, real: torch.Tensor, axes: tuple[int, ...] = VOLUME_AXES) -> torch.Tensor:
    """Sum over ``axes`` of the L1 distance between mean projections of the two volumes along that axis."""
    return sum(F.l1_loss(fake.mean(dim=axis), real.mean(dim=axis)) for axis in axes)  # type: ignore[return-value]


@dataclass(frozen=True)
class LossWeights:
    """Loss weights and options; defaults are the official biplanar configuration.

    Attributes:
        adversarial: weight of the LSGAN term (generator and discriminator), 0.1.
        reconstruction: weight of the voxel loss, 10.
        projection: weight of the projection loss, applied to the sum over the three axes, 10/3.
        reconstruction_kind: "mse" (official) or "l1".
    """

    adversarial: float = 0.1
    reconstruction: float = 10.0
    projection: float = 10.0 / 3.0
    reconstruction_kind: str = "mse"

    def __post_init__(self) -> None:
        for name in ("adversarial", "reconstruction", "projection"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.reconstruction_kind not in RECONSTRUCTION_KINDS:
            raise ValueError(
                f"unknown reconstruction loss {self.reconstruction_kind!r}; expected one of {RECONSTRUCTION_KINDS}"
            )


def generator_loss_terms(
    fake_logits: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """Weighted generator terms ``adversarial``, ``reconstruction``, ``projection`` and their ``total``."""
    terms = {
        "adversarial": weights.adversarial * lsgan_loss(fake_logits, target_is_real=True),
        "reconstruction": weights.reconstruction * reconstruction_loss(fake, real, weights.reconstruction_kind),
        "projection": weights.projection * projection_loss(fake, real),
    }
    terms["total"] = terms["adversarial"] + terms["reconstruction"] + terms["projection"]
    return terms


def discriminator_loss_terms(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """Weighted discriminator terms ``real``, ``fake`` and their ``total`` (fake logits from a detached volume)."""
    terms = {
        "real": weights.adversarial * lsgan_loss(real_logits, target_is_real=True),
        "fake": weights.adversarial * lsgan_loss(fake_logits, target_is_real=False),
    }
    terms["total"] = terms["real"] + terms["fake"]
    return terms
