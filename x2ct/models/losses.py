"""X2CT-GAN losses (reference section 2): LSGAN adversarial, voxel reconstruction and projection losses, plus the
re-projection (DRR-consistency) loss of the geometry-aware models.

Volumes are (N, 1, D, H, W) in the model's [0, 1] scale; discriminator outputs are patch maps (N, 1, P, P, P).
Generator:     w_adv * mean((D(x, fake) - 1)^2) + w_rec * rec(fake, real)
               + w_proj * sum_{axis in D,H,W} mean|mean_axis(fake) - mean_axis(real)|
               + w_reproj * mean_{views} mean|A_v(fake) - A_v(real)|
               + w_bone * BCE(sigmoid((fake - t) / s), real >= t)
where A_v are line integrals along the rays of view v (the input views' projection matrices, plus optional extra
views turned by random angles about the D axis), computed by :func:`x2ct.drr.matrix_projector.project_volume`, and
the bone-boundary term compares a soft bone mask of the prediction (threshold t, softness s, from HU through the CT
window) with the ground truth's bone mask: it is large only where the prediction is on the wrong side of the bone
threshold, so it sharpens exactly the cortical outlines and posterior elements a voxel loss blurs.
Discriminator: w_adv * [mean((D(x, real) - 1)^2) + mean(D(x, fake.detach())^2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU, CTWindow
from x2ct.drr.matrix_projector import project_volume, rotate_about_depth_axis
from x2ct.metrics.modern import DEFAULT_BONE_THRESHOLD_HU

REAL_TARGET: float = 1.0
FAKE_TARGET: float = 0.0
VOLUME_AXES: tuple[int, int, int] = (2, 3, 4)  # D, H, W of (N, C, D, H, W)
RECONSTRUCTION_KINDS: tuple[str, ...] = ("mse", "l1")
BONE_SOFTNESS_HU: float = 50.0  # HU over which the soft bone mask goes from 27 % to 73 %


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


def reprojection_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    projections: Sequence[torch.Tensor],
    detector_size: int,
    n_samples: int,
) -> torch.Tensor:
    """Mean over views of the L1 distance between the line integrals of ``fake`` and ``real`` (N, 1, D, H, W) along
    the rays of each (N, 3, 4) matrix in ``projections``, on a ``detector_size``^2 detector. Gradients reach
    ``fake`` only."""
    if not projections:
        raise ValueError("the re-projection loss needs at least one view's projection matrices")
    detector = (detector_size, detector_size)
    distances = []
    for projection in projections:
        with torch.no_grad():
            target = project_volume(real, projection, detector, n_samples)
        distances.append(F.l1_loss(project_volume(fake, projection, detector, n_samples), target))
    return torch.stack(distances).mean()


def bone_boundary_loss(fake: torch.Tensor, real: torch.Tensor, threshold: float, softness: float) -> torch.Tensor:
    """Binary cross-entropy between the soft bone mask ``sigmoid((fake - threshold) / softness)`` of the prediction
    and the bone mask ``real >= threshold`` of the ground truth, both (N, 1, D, H, W) on the [0, 1] scale
    (``threshold`` and ``softness`` on that scale too). Zero gradient nowhere: a voxel on the right side of the
    threshold by many ``softness`` costs almost nothing, one on the wrong side costs about its distance / softness."""
    if not softness > 0:
        raise ValueError(f"the bone mask softness must be > 0, got {softness}")
    logits = (fake.float() - threshold) / softness
    return F.binary_cross_entropy_with_logits(logits, (real >= threshold).float())


def random_turns(projection: torch.Tensor, n_views: int, max_angle_deg: float) -> list[torch.Tensor]:
    """``n_views`` copies of ``projection`` (N, 3, 4), each turned about the D axis by an angle drawn uniformly from
    [-max_angle_deg, max_angle_deg] per case (torch's global generator)."""
    turned = []
    for _ in range(n_views):
        angles = (torch.rand(projection.shape[0], device=projection.device) * 2.0 - 1.0) * max_angle_deg
        turned.append(rotate_about_depth_axis(projection, angles))
    return turned


@dataclass(frozen=True)
class LossWeights:
    """Loss weights and options; defaults are the official biplanar configuration.

    Attributes:
        adversarial: weight of the LSGAN term (generator and discriminator), 0.1.
        reconstruction: weight of the voxel loss, 10.
        projection: weight of the projection loss, applied to the sum over the three axes, 10/3.
        reconstruction_kind: "mse" (official) or "l1".
        reprojection: weight of the re-projection loss (0: off, the paper's configuration).
        reprojection_detector: detector edge (pixels) of the re-projections.
        reprojection_samples: samples per ray.
        reprojection_extra_views: views added to the input views, each the lateral view turned by a random angle.
        reprojection_extra_angle_deg: largest turn of the extra views.
        bone: weight of the bone-boundary loss (0: off, the paper's configuration).
        bone_threshold_hu: bone = HU >= this (the evaluation's Dice/HD95 threshold by default).
        bone_softness_hu: HU scale of the soft bone mask of the prediction.
        ct_window_hu: (low, high) HU of the [0, 1] scale, to place the threshold on it.
    """

    adversarial: float = 0.1
    reconstruction: float = 10.0
    projection: float = 10.0 / 3.0
    reconstruction_kind: str = "mse"
    reprojection: float = 0.0
    reprojection_detector: int = 64
    reprojection_samples: int = 96
    reprojection_extra_views: int = 0
    reprojection_extra_angle_deg: float = 30.0
    bone: float = 0.0
    bone_threshold_hu: float = DEFAULT_BONE_THRESHOLD_HU
    bone_softness_hu: float = BONE_SOFTNESS_HU
    ct_window_hu: tuple[float, float] = DEFAULT_CT_WINDOW_HU

    def __post_init__(self) -> None:
        object.__setattr__(self, "ct_window_hu", tuple(float(v) for v in self.ct_window_hu))
        window = CTWindow.from_pair(self.ct_window_hu)  # rejects a bad window
        if not window.low_hu < float(self.bone_threshold_hu) < window.high_hu:
            raise ValueError(
                f"bone_threshold_hu={self.bone_threshold_hu} must lie inside the CT window {self.ct_window_hu}"
            )
        if not float(self.bone_softness_hu) > 0:
            raise ValueError(f"bone_softness_hu must be > 0, got {self.bone_softness_hu}")
        for name in (
            "adversarial",
            "reconstruction",
            "projection",
            "reprojection",
            "reprojection_extra_views",
            "bone",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.reprojection_detector < 1 or self.reprojection_samples < 1:
            raise ValueError(
                "reprojection_detector and reprojection_samples must be >= 1, got "
                f"{self.reprojection_detector} and {self.reprojection_samples}"
            )
        if self.reconstruction_kind not in RECONSTRUCTION_KINDS:
            raise ValueError(
                f"unknown reconstruction loss {self.reconstruction_kind!r}; expected one of {RECONSTRUCTION_KINDS}"
            )

    @property
    def bone_threshold(self) -> float:
        """The bone threshold on the [0, 1] scale."""
        window = CTWindow.from_pair(self.ct_window_hu)
        return (float(self.bone_threshold_hu) - window.low_hu) / window.width_hu

    @property
    def bone_softness(self) -> float:
        """The soft bone mask's scale on the [0, 1] scale."""
        return float(self.bone_softness_hu) / CTWindow.from_pair(self.ct_window_hu).width_hu


def generator_loss_terms(
    fake_logits: torch.Tensor | None,
    fake: torch.Tensor,
    real: torch.Tensor,
    weights: LossWeights,
    projections: Sequence[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted generator terms ``adversarial``, ``reconstruction``, ``projection`` (and ``reprojection`` when its
    weight is positive: then ``projections`` are the input views' (N, 3, 4) matrices, the lateral one last; and
    ``bone`` when its weight is positive) and their ``total``. ``fake_logits`` may be None only when the adversarial
    weight is 0 (no discriminator is run)."""
    if fake_logits is None and weights.adversarial > 0:
        raise ValueError("the adversarial term needs the discriminator's logits of the fake volume")
    adversarial = fake.new_zeros(()) if fake_logits is None else lsgan_loss(fake_logits, target_is_real=True)
    terms = {
        "adversarial": weights.adversarial * adversarial,
        "reconstruction": weights.reconstruction * reconstruction_loss(fake, real, weights.reconstruction_kind),
        "projection": weights.projection * projection_loss(fake, real),
    }
    if weights.reprojection > 0:
        if not projections:
            raise ValueError("loss.reprojection > 0 needs the batch's projection matrices (proj_xray1, proj_xray2)")
        views = list(projections)
        views += random_turns(views[-1], weights.reprojection_extra_views, weights.reprojection_extra_angle_deg)
        terms["reprojection"] = weights.reprojection * reprojection_loss(
            fake, real, views, weights.reprojection_detector, weights.reprojection_samples
        )
    if weights.bone > 0:
        terms["bone"] = weights.bone * bone_boundary_loss(fake, real, weights.bone_threshold, weights.bone_softness)
    terms["total"] = sum(terms.values())  # type: ignore[assignment]
    return terms


def point_loss_terms(predicted: torch.Tensor, target: torch.Tensor, weights: LossWeights) -> dict[str, torch.Tensor]:
    """Weighted ``reconstruction`` (and ``bone``, when its weight is positive) terms and their ``total`` of a
    point-sampled step: ``predicted`` and ``target`` are the values (N, M) at the same sampled voxels. The terms
    that need whole volumes (adversarial, projection, re-projection) have no point form."""
    terms = {
        "reconstruction": weights.reconstruction * reconstruction_loss(predicted, target, weights.reconstruction_kind)
    }
    if weights.bone > 0:
        terms["bone"] = weights.bone * bone_boundary_loss(
            predicted, target, weights.bone_threshold, weights.bone_softness
        )
    terms["total"] = sum(terms.values())  # type: ignore[assignment]
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
