"""A view at angle t equals the 0-degree view of the volume rotated by t about D (lateral: columns mirrored).

With R the rotation about the volume centre that maps e_H to the beam d(t) and e_W to the column axis, the view at
t of mu equals the AP view of ``mu'(x) = mu(R x)``. For t = 90 degrees ``mu' = rot90(mu, k=-1, axes=(H, W))``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from x2ct.drr.geometry import ViewSpec
from x2ct.drr.projector import project_mu

SHAPE = (24, 40, 40)
SPACING = (1.5, 1.0, 1.0)  # isotropic in the rotation plane (H, W)
SOD_MM = 200.0
METHODS = ("trilinear", "joseph")
GEOMETRIES = ("parallel", "cone")


def _smooth_random_volume(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    volume = gaussian_filter(rng.random(SHAPE), sigma=2.0)
    volume = np.clip(volume - volume.mean(), 0.0, None)
    return torch.tensor(volume / volume.max(), dtype=torch.float64)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_quarter_turn_equals_rotated_volume(method: str, geometry: str) -> None:
    mu = _smooth_random_volume(1)
    rotated = torch.rot90(mu, k=-1, dims=(1, 2))
    kwargs = {"geometry": geometry, "sod_mm": SOD_MM, "method": method, "n_samples": 80}
    views = [ViewSpec("side", 90.0, lateral=False), ViewSpec("lat", 90.0, lateral=True)]
    side, lateral = project_mu(mu, SPACING, views, **kwargs)
    ap_of_rotated = project_mu(rotated, SPACING, [ViewSpec("ap", 0.0)], **kwargs)[0]
    torch.testing.assert_close(side, ap_of_rotated, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lateral, ap_of_rotated.flip(-1), rtol=1e-6, atol=1e-6)
    # the mirror matters: the flipped image differs from the unflipped one
    assert (lateral - side).abs().max() > 0.1 * side.abs().max()


def _blob_field(points: np.ndarray) -> np.ndarray:
    """Smooth analytic object: anisotropic Gaussians at off-centre positions, evaluated at (..., 3) mm points."""
    centre = (np.array(SHAPE) - 1) / 2 * np.array(SPACING)
    blobs = [  # (offset mm, inverse covariance diagonal (D, H, W), amplitude)
        (np.array([0.0, -8.0, 5.0]), np.array([0.05, 0.08, 0.02]), 1.0),
        (np.array([4.0, 6.0, -7.0]), np.array([0.04, 0.03, 0.12]), 0.7),
        (np.array([-5.0, 2.0, 9.0]), np.array([0.06, 0.10, 0.10]), 0.5),
    ]
    field = np.zeros(points.shape[:-1])
    for offset, inverse_cov, amplitude in blobs:
        delta = points - (centre + offset)
        field += amplitude * np.exp(-0.5 * np.sum(inverse_cov * delta**2, axis=-1))
    return field


def _rotated_about_d(points: np.ndarray, angle_deg: float) -> np.ndarray:
    """R x about the volume centre: e_H -> cos e_H + sin e_W, e_W -> -sin e_H + cos e_W."""
    centre = (np.array(SHAPE) - 1) / 2 * np.array(SPACING)
    theta = math.radians(angle_deg)
    rel = points - centre
    h, w = rel[..., 1], rel[..., 2]
    out = rel.copy()
    out[..., 1] = math.cos(theta) * h - math.sin(theta) * w
    out[..., 2] = math.sin(theta) * h + math.cos(theta) * w
    return out + centre


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_off_grid_angle_equals_rotated_volume(method: str, geometry: str) -> None:
    angle = 30.0
    axes = [np.arange(n) * s for n, s in zip(SHAPE, SPACING, strict=True)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    mu = torch.tensor(_blob_field(points))
    mu_rotated = torch.tensor(_blob_field(_rotated_about_d(points, angle)))
    kwargs = {"geometry": geometry, "sod_mm": SOD_MM, "method": method, "n_samples": 80}
    views = [ViewSpec("obl", angle), ViewSpec("obl_mirrored", angle, lateral=True)]
    oblique, mirrored = project_mu(mu, SPACING, views, **kwargs)
    reference = project_mu(mu_rotated, SPACING, [ViewSpec("ap", 0.0)], **kwargs)[0]
    relative_error = float((oblique - reference).norm() / reference.norm())
    assert relative_error < 0.01, relative_error
    assert _correlation(oblique, reference) > 0.999
    torch.testing.assert_close(mirrored, oblique.flip(-1), rtol=1e-6, atol=1e-6)
    assert _correlation(mirrored, reference) < 0.9  # the mirror is visible on this asymmetric object
