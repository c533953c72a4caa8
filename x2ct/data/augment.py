"""Optional training augmentation of normalized samples (off by default, as in the official X2CT-GAN code).

Operates on the tensors of a sample (``ct`` (1, D, H, W), ``xray1`` (1, S, S), ``xray2`` (1, S, S), all in
[0, 1], canonical axes; optional projection matrices ``proj_xray1`` / ``proj_xray2`` (3, 4), see
:mod:`x2ct.drr.projection`) and draws every random number from the ``torch.Generator`` it is given.

* ``flip_lr`` (probability): mirror left-right. The CT is flipped along W and the AP view ``xray1`` along its
  columns (which line up with W). The lateral view ``xray2`` is a projection along W and is left as it is:
  this is exact for a parallel-beam projection (a sum along W does not change when W is reversed) and only
  approximate for a cone beam (the source side, hence the magnification of each half, swaps) and for
  laterals other than 90 degrees (a mirrored 85-degree view is a 95-degree view). The projection matrices
  ``proj_xray1`` / ``proj_xray2`` (when the sample has them) follow exactly: both get x -> -x, ``proj_xray1``
  also u -> -u, so every voxel of the flipped CT still maps to the pixel its tissue projects onto in the
  images as delivered (even where the unflipped ``xray2`` is only approximately a view of the flipped CT).
* ``xray_gamma`` ``(low, high)``: each X-ray becomes ``x ** g`` with ``g`` uniform in [low, high], drawn
  independently per view.
* ``xray_noise_std``: additive Gaussian noise of this standard deviation (on the [0, 1] scale) on each X-ray,
  then clipped to [0, 1].

The CT is never changed except by the flip, so the target stays consistent with the input views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from x2ct.drr.projection import flip_image_columns, flip_volume_x

CT_WIDTH_AXIS = -1  # W, the patient's right -> left, last axis of (1, D, H, W)
XRAY_COLUMN_AXIS = -1  # columns of (1, S, S); xray1 columns line up with the CT's W
XRAY_KEYS = ("xray1", "xray2")
PROJECTION_KEYS = ("proj_xray1", "proj_xray2")  # projection matrices of xray1 and xray2, (3, 4)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; the defaults switch everything off.

    Attributes:
        flip_lr: probability in [0, 1] of a left-right flip (CT along W and xray1 columns together).
        xray_gamma: ``(low, high)`` range of the gamma exponent (0 < low <= high), or None for no gamma.
        xray_noise_std: standard deviation (>= 0) of additive Gaussian noise on the [0, 1] X-rays.
    """

    flip_lr: float = 0.0
    xray_gamma: tuple[float, float] | None = None
    xray_noise_std: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.flip_lr) <= 1.0:
            raise ValueError(f"augment.flip_lr must be a probability in [0, 1], got {self.flip_lr!r}")
        if self.xray_gamma is not None:
            gamma = tuple(float(g) for g in self.xray_gamma)
            if len(gamma) != 2 or not 0.0 < gamma[0] <= gamma[1]:
                raise ValueError(f"augment.xray_gamma must be (low, high), 0 < low <= high, got {self.xray_gamma!r}")
            object.__setattr__(self, "xray_gamma", gamma)
        if not float(self.xray_noise_std) >= 0.0:
            raise ValueError(f"augment.xray_noise_std must be >= 0, got {self.xray_noise_std!r}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> AugmentConfig:
        """Build from a dict (or Hydra DictConfig) with keys among ``flip_lr``, ``xray_gamma``,
        ``xray_noise_std``; unknown keys raise ValueError."""
        allowed = {"flip_lr", "xray_gamma", "xray_noise_std"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ValueError(f"unknown augment settings {unknown}; allowed: {sorted(allowed)}")
        values = dict(settings)
        if values.get("xray_gamma") is not None:
            values["xray_gamma"] = tuple(values["xray_gamma"])
        return cls(**values)

    @property
    def is_identity(self) -> bool:
        """True when no setting would change a sample."""
        return self.flip_lr == 0.0 and self.xray_gamma is None and self.xray_noise_std == 0.0


class TripletAugmenter:
    """Applies an :class:`AugmentConfig` to a sample dict; returns a new dict (the input is not modified)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __call__(self, sample: Mapping[str, Any], generator: torch.Generator) -> dict[str, Any]:
        out = dict(sample)
        if self.config.flip_lr > 0.0 and _uniform(generator) < self.config.flip_lr:
            out["ct"] = out["ct"].flip(CT_WIDTH_AXIS)
            out["xray1"] = out["xray1"].flip(XRAY_COLUMN_AXIS)
            ap_key, lateral_key = PROJECTION_KEYS
            if ap_key in out:
                out[ap_key] = flip_image_columns(flip_volume_x(out[ap_key]))
            if lateral_key in out:
                out[lateral_key] = flip_volume_x(out[lateral_key])
        for key in XRAY_KEYS:
            out[key] = self._augment_xray(out[key], generator)
        return out

    def _augment_xray(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.config.xray_gamma is not None:
            low, high = self.config.xray_gamma
            exponent = low + (high - low) * _uniform(generator)
            image = image.clamp(min=0.0).pow(exponent)
        if self.config.xray_noise_std > 0.0:
            noise = torch.randn(image.shape, generator=generator, dtype=image.dtype)
            image = (image + self.config.xray_noise_std * noise).clamp(0.0, 1.0)
        return image


def _uniform(generator: torch.Generator) -> float:
    """One number uniform in [0, 1) from ``generator``."""
    return float(torch.rand((), generator=generator))
