"""Line integrals against analytic chord lengths (sphere, cylinder), parallel and cone beam, both methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from x2ct.drr.geometry import ViewSpec
from x2ct.drr.projector import build_projector, project_mu

SHAPE = (40, 44, 52)
SPACING = (1.0, 0.9, 0.8)  # extents 40 x 39.6 x 41.6 mm
SOD_MM = 120.0  # short source distance: strong cone angles
METHODS = ("trilinear", "joseph")
MIN_CHORD_MM = 20.0  # rays well inside: grazing chords suffer from the voxelized surface
TOLERANCE = 0.01


def _grid_mm() -> np.ndarray:
    """(D, H, W, 3) voxel-centre coordinates in mm."""
    axes = [np.arange(n) * s for n, s in zip(SHAPE, SPACING, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _soft_indicator(signed_distance_mm: np.ndarray) -> np.ndarray:
    """Anti-aliased inside indicator with a 1-voxel linear edge (symmetric, so chord lengths are kept)."""
    edge = max(SPACING)
    return np.clip(0.5 - signed_distance_mm / edge, 0.0, 1.0)


def _rays(view: ViewSpec, iso: np.ndarray, geometry: str) -> tuple[np.ndarray, np.ndarray]:
    """Ray points and unit directions (R, C, 3) computed from the contract's formulas."""
    theta = math.radians(view.angle_deg)
    d = np.array([0.0, math.cos(theta), math.sin(theta)])
    e_col = np.array([0.0, -math.sin(theta), math.cos(theta)]) * (-1.0 if view.lateral else 1.0)
    lateral_like = abs(math.sin(theta)) > abs(math.cos(theta))
    rows, cols = (SHAPE[0], SHAPE[1]) if lateral_like else (SHAPE[0], SHAPE[2])
    pitch_col = SPACING[1] if lateral_like else SPACING[2]
    c0 = (np.array(SHAPE) - 1) / 2 * np.array(SPACING)
    centre = c0 + np.dot(iso - c0, d) * d
    r = (np.arange(rows) - (rows - 1) / 2)[:, None, None] * SPACING[0]
    c = (np.arange(cols) - (cols - 1) / 2)[None, :, None] * pitch_col
    q = centre + r * np.array([1.0, 0, 0]) + c * e_col
    if geometry == "parallel":
        return q, np.broadcast_to(d, q.shape)
    source = iso - SOD_MM * d
    u = q - source
    return q, u / np.linalg.norm(u, axis=-1, keepdims=True)


def _project(mu: torch.Tensor, iso: np.ndarray, geometry: str, method: str) -> list[torch.Tensor]:
    """One (R, C) image per view (views of different shapes, so not stacked)."""
    projector = build_projector(
        SHAPE, SPACING, VIEWS, iso, geometry=geometry, sod_mm=SOD_MM, method=method, dtype=mu.dtype
    )
    return [image[0] for image in projector(mu[None])]


def _check(image: torch.Tensor, chord: np.ndarray, mask: np.ndarray) -> None:
    assert mask.sum() > 50, "too few rays compared"
    rel = np.abs(image.numpy()[mask] - chord[mask]) / chord[mask]
    assert rel.max() < TOLERANCE, f"max relative chord error {rel.max():.4f}"


VIEWS = [ViewSpec("ap", 0.0), ViewSpec("lat", 90.0, lateral=True), ViewSpec("obl", 30.0), ViewSpec("l75", 75.0)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", ["parallel", "cone"])
def test_sphere_chords(method: str, geometry: str) -> None:
    radius = 15.0
    centre = (np.array(SHAPE) - 1) / 2 * np.array(SPACING) + np.array([1.0, -1.5, 2.0])
    distance = np.linalg.norm(_grid_mm() - centre, axis=-1)
    mu = torch.tensor(_soft_indicator(distance - radius), dtype=torch.float32)
    iso = centre + np.array([0.0, 3.0, -2.0])
    images = _project(mu, iso, geometry, method)
    for view, image in zip(VIEWS, images, strict=True):
        points, directions = _rays(view, iso, geometry)
        offset = points - centre
        along = np.sum(offset * directions, axis=-1, keepdims=True)
        miss = np.linalg.norm(offset - along * directions, axis=-1)
        chord = 2 * np.sqrt(np.clip(radius**2 - miss**2, 0.0, None))
        _check(image, chord, chord > MIN_CHORD_MM)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", ["parallel", "cone"])
def test_cylinder_chords(method: str, geometry: str) -> None:
    """Infinite cylinder along D: chord = 2 sqrt(R^2 - rho^2) / |u_HW| (rays well inside the D extent)."""
    radius = 14.0
    axis_hw = (np.array(SHAPE[1:]) - 1) / 2 * np.array(SPACING[1:]) + np.array([-1.0, 1.5])
    rho = np.linalg.norm(_grid_mm()[..., 1:] - axis_hw, axis=-1)
    mu = torch.tensor(_soft_indicator(rho - radius), dtype=torch.float32)
    iso = (np.array(SHAPE) - 1) / 2 * np.array(SPACING) + np.array([0.0, 4.0, -3.0])
    images = _project(mu, iso, geometry, method)
    for view, image in zip(VIEWS, images, strict=True):
        points, directions = _rays(view, iso, geometry)
        u_hw = directions[..., 1:]
        norm_hw = np.linalg.norm(u_hw, axis=-1)
        offset = points[..., 1:] - axis_hw
        along = np.sum(offset * u_hw, axis=-1) / norm_hw
        miss_sq = np.sum(offset**2, axis=-1) - along**2
        chord = 2 * np.sqrt(np.clip(radius**2 - miss_sq, 0.0, None)) / norm_hw
        # keep rays that stay inside the volume's D extent while crossing the cylinder
        rows = np.arange(SHAPE[0])[:, None]
        inner_rows = (rows >= 8) & (rows < SHAPE[0] - 8)
        _check(image, chord, (chord > MIN_CHORD_MM) & inner_rows)


def test_parallel_ap_is_exact_voxel_sum() -> None:
    """Alignment invariant: parallel AP line integral = sum_h mu[r, h, c] * s_H for both methods."""
    generator = torch.Generator().manual_seed(0)
    mu = torch.rand(SHAPE, generator=generator, dtype=torch.float64)
    expected = mu.sum(dim=1) * SPACING[1]
    for method in METHODS:
        image = project_mu(mu, SPACING, [ViewSpec("ap", 0.0)], geometry="parallel", method=method, n_samples=44)
        torch.testing.assert_close(image[0], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", ["parallel", "cone"])
def test_uniform_box_gives_chord_through_the_box(method: str, geometry: str) -> None:
    """mu = 1 everywhere: p = length of the ray inside the voxel-edge box, also for cone rays that leave through
    a side face (Joseph weights those partial plane cells by the part inside)."""
    mu = torch.ones(SHAPE, dtype=torch.float64)
    iso = (np.array(SHAPE) - 1) / 2 * np.array(SPACING) + np.array([2.0, -3.0, 1.0])
    images = _project(mu, iso, geometry, method)
    low = -0.5 * np.array(SPACING)
    high = (np.array(SHAPE) - 0.5) * np.array(SPACING)
    for view, image in zip(VIEWS, images, strict=True):
        points, directions = _rays(view, iso, geometry)
        with np.errstate(divide="ignore"):
            t_a, t_b = (low - points) / directions, (high - points) / directions
        t_near = np.where(directions == 0, -np.inf, np.minimum(t_a, t_b)).max(axis=-1)
        t_far = np.where(directions == 0, np.inf, np.maximum(t_a, t_b)).min(axis=-1)
        chord = np.clip(t_far - t_near, 0.0, None)
        np.testing.assert_allclose(image.numpy(), chord, rtol=1e-6, atol=1e-6, err_msg=view.name)
