"""Line integrals through a volume along the rays that a projection matrix defines (differentiable, batched).

This is the projector that training losses use: it needs only the batch's matrices (the contract of
``docs/architecture.md``: ``P`` (N, 3, 4) maps homogeneous grid coordinates ``(x, y, z, 1)`` -- x along W, y along H,
z along D, in [-1, 1], ``align_corners=False`` -- to ``(u s, v s, s)``, u along image columns, v along rows). For a
detector pixel ``(u, v)`` the ray is the set of grid points that ``P`` maps onto it:

* cone beam (``P[2, :3] != 0``): from the source ``c = -M^-1 t`` (``P = [M | t]``) along ``M^-1 (u, v, 1)``;
* parallel beam (``P[2] = (0, 0, 0, 1)``): along ``m_1 x m_2`` (the rows of M) through the least-squares point of
  ``M[:2] X = (u, v) - t[:2]``.

Each ray is clipped to the volume's box ``[-1, 1]^3`` and sampled at ``n_samples`` mid-points with trilinear
``grid_sample`` (zeros outside); the integral is the sum times the step length, in grid units (1 = half the volume's
edge along that direction). Integrating the model's [0, 1] volume gives an affine function of the attenuation line
integral (HU -> mu is linear), so comparing two volumes' projections through the same operator is a
re-projection (DRR-consistency) loss that does not depend on how the input X-rays were windowed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CONE_EPS: float = 1e-8  # |P[2, :3]| below this: a parallel beam
SLAB_EPS: float = 1e-12  # ray components below this are treated as parallel to a slab
DEFAULT_SAMPLES: int = 128


def _pixel_centres(rows: int, cols: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(u, v)`` of every detector pixel centre in [-1, 1], row-major: (rows * cols, 2)."""
    v = (2.0 * torch.arange(rows, device=device, dtype=dtype) + 1.0) / rows - 1.0
    u = (2.0 * torch.arange(cols, device=device, dtype=dtype) + 1.0) / cols - 1.0
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack((uu, vv), dim=-1).reshape(-1, 2)


def matrix_rays(projection: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of the pixels ``uv`` (R, 2) for matrices ``projection`` (N, 3, 4), in grid coordinates.

    Returns ``(origins, directions)``, each (N, R, 3) (x, y, z); directions have unit length. For a cone beam the
    origin is the source and the ray runs towards the detector; for a parallel beam it is a point on the ray.
    """
    if projection.dim() != 3 or projection.shape[1:] != (3, 4):
        raise ValueError(f"projection matrices must be (N, 3, 4), got {tuple(projection.shape)}")
    p = projection.to(torch.float64)
    uv = uv.to(torch.float64)
    m, t = p[:, :, :3], p[:, :, 3]
    n, r = p.shape[0], uv.shape[0]
    cone = m[:, 2].norm(dim=-1) > CONE_EPS
    origins = torch.empty(n, r, 3, dtype=torch.float64, device=p.device)
    directions = torch.empty_like(origins)
    homogeneous = torch.cat((uv, torch.ones(r, 1, dtype=uv.dtype, device=uv.device)), dim=-1)  # (R, 3)
    if cone.any():
        m_inv = torch.linalg.inv(m[cone])
        source = -(m_inv @ t[cone].unsqueeze(-1)).squeeze(-1)  # (n_cone, 3)
        origins[cone] = source[:, None, :].expand(-1, r, 3)
        directions[cone] = torch.einsum("nij,rj->nri", m_inv, homogeneous)
    if (~cone).any():
        rows2 = m[~cone][:, :2]  # (n_par, 2, 3)
        direction = torch.linalg.cross(rows2[:, 0], rows2[:, 1])  # (n_par, 3)
        gram_inv = torch.linalg.inv(rows2 @ rows2.transpose(1, 2))  # (n_par, 2, 2)
        rhs = uv[None] - t[~cone][:, None, :2]  # (n_par, R, 2)
        origins[~cone] = torch.einsum("nji,njk,nrk->nri", rows2, gram_inv, rhs)
        directions[~cone] = direction[:, None, :].expand(-1, r, 3)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return origins, directions


def clip_to_unit_box(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit parameters ``t`` of rays ``o + t d`` in the box [-1, 1]^3 (slab method), each (...).

    Rays that miss the box get ``t_in == t_out``."""
    safe = torch.where(directions.abs() < SLAB_EPS, torch.full_like(directions, SLAB_EPS), directions)
    t_low = (-1.0 - origins) / safe
    t_high = (1.0 - origins) / safe
    t_in = torch.minimum(t_low, t_high).amax(dim=-1)
    t_out = torch.maximum(t_low, t_high).amin(dim=-1)
    t_out = torch.maximum(t_out, t_in)
    return t_in, t_out


def project_volume(
    volume: torch.Tensor,
    projection: torch.Tensor,
    detector_shape: tuple[int, int],
    n_samples: int = DEFAULT_SAMPLES,
) -> torch.Tensor:
    """Line integrals of ``volume`` (N, C, D, H, W) for the views ``projection`` (N, 3, 4) on a ``rows x cols``
    detector covering the image's [-1, 1] frame: (N, C, rows, cols). Differentiable in ``volume``."""
    if volume.dim() != 5:
        raise ValueError(f"volume must be (N, C, D, H, W), got {tuple(volume.shape)}")
    if projection.shape[0] != volume.shape[0]:
        raise ValueError(f"{projection.shape[0]} projection matrices for a batch of {volume.shape[0]} volumes")
    rows, cols = (int(s) for s in detector_shape)
    if rows < 1 or cols < 1 or n_samples < 1:
        raise ValueError(f"detector shape and n_samples must be positive, got {(rows, cols)} and {n_samples}")
    with torch.no_grad():
        uv = _pixel_centres(rows, cols, volume.device, torch.float64)
        origins, directions = matrix_rays(projection.detach(), uv)
        t_in, t_out = clip_to_unit_box(origins, directions)
        fractions = (torch.arange(n_samples, device=volume.device, dtype=torch.float64) + 0.5) / n_samples
        t = t_in[..., None] + (t_out - t_in)[..., None] * fractions  # (N, R, S)
        points = origins[:, :, None, :] + t[..., None] * directions[:, :, None, :]  # (N, R, S, 3)
        step = ((t_out - t_in) / n_samples).to(volume.dtype)  # (N, R)
        grid = points.to(volume.dtype).unsqueeze(3)  # (N, R, S, 1, 3)
    samples = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    integrals = samples.squeeze(-1).sum(dim=-1) * step[:, None, :]  # (N, C, R)
    return integrals.view(volume.shape[0], volume.shape[1], rows, cols)


def rotate_about_depth_axis(projection: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """The matrices of the same views with the volume turned by ``angle_deg`` (N,) about its D (z) axis through the
    grid centre: ``P R`` with R rotating (x, y). Exact rotations for cubes with isotropic voxels."""
    a = torch.deg2rad(angle_deg.to(torch.float64))
    cos, sin = torch.cos(a), torch.sin(a)
    rotation = torch.zeros(projection.shape[0], 4, 4, dtype=torch.float64, device=projection.device)
    rotation[:, 0, 0], rotation[:, 0, 1] = cos, -sin
    rotation[:, 1, 0], rotation[:, 1, 1] = sin, cos
    rotation[:, 2, 2] = 1.0
    rotation[:, 3, 3] = 1.0
    return (projection.to(torch.float64) @ rotation).to(projection.dtype)
