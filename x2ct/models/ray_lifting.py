"""Lifting 2D view features into the 3D grid along the true rays, through each view's projection matrix.

Coordinates follow the batch contract (``docs/architecture.md``): a projection matrix ``P`` (N, 3, 4) maps
homogeneous CT grid coordinates ``(x, y, z, 1)`` -- x along W, y along H, z along D, each in [-1, 1] with
``align_corners=False`` voxel centres -- to homogeneous image coordinates ``(u s, v s, s)``, u along the image
columns and v along its rows, in [-1, 1]. Every voxel of a (D, H, W) grid is projected into a view and reads the
view's 2D feature map there with bilinear ``grid_sample`` (zeros outside the image). Views are then fused by
statistics that do not depend on their number or order (mean and variance), so the same network serves one view,
two views at any angle, or more.

Sampling grids depend only on (matrix, grid shape); :class:`SamplingGridCache` keeps the most recent ones, so
evaluation at fixed geometries and the several feature maps read at one decoder scale compute each grid once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F

HOMOGENEOUS_EPS: float = 1e-6  # |s| below this: the voxel lies in the source's plane (no valid projection)
OUTSIDE_UV: float = 2.0  # an image coordinate outside [-1, 1]: grid_sample reads zero there
DEFAULT_CACHE_SIZE: int = 16
FUSIONS: tuple[str, ...] = ("mean_var", "mean", "mean_var_prod")
_FUSION_MULTIPLIER: dict[str, int] = {"mean": 1, "mean_var": 2, "mean_var_prod": 3}


def checked_view_names(views: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """``views`` as a tuple of names, refused unless a non-empty subset of ``allowed`` without repeats."""
    names = tuple(str(v) for v in views)
    if not names or any(v not in allowed for v in names) or len(set(names)) != len(names):
        raise ValueError(f"views must be a non-empty subset of {tuple(allowed)} without repeats, got {tuple(views)}")
    return names


def views_with_geometry(
    views: Sequence[str],
    xray1: torch.Tensor | None,
    xray2: torch.Tensor | None,
    proj_xray1: torch.Tensor | None,
    proj_xray2: torch.Tensor | None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The images and matrices of ``views`` (names ``"xray1"`` / ``"xray2"``) in that order, from a generator's
    keyword inputs; a used view without its image or matrix is refused by name."""
    given = {"xray1": (xray1, proj_xray1), "xray2": (xray2, proj_xray2)}
    images, projections = [], []
    for view in views:
        image, projection = given[view]
        if image is None or projection is None:
            raise ValueError(f"this generator uses view {view!r}: pass {view} and proj_{view}")
        images.append(image)
        projections.append(projection)
    return images, projections


def normalized_axis(n: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Voxel-centre coordinates of an axis of length ``n`` in [-1, 1] (``align_corners=False``): (n,)."""
    return (2.0 * torch.arange(n, device=device, dtype=dtype) + 1.0) / n - 1.0


def homogeneous_voxel_grid(
    shape: Sequence[int], device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Homogeneous coordinates ``(x, y, z, 1)`` of every voxel of a (D, H, W) grid, D slowest: (D*H*W, 4)."""
    depth, height, width = (int(s) for s in shape)
    z = normalized_axis(depth, device, dtype)
    y = normalized_axis(height, device, dtype)
    x = normalized_axis(width, device, dtype)
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    ones = torch.ones_like(xx)
    return torch.stack((xx, yy, zz, ones), dim=-1).reshape(-1, 4)


def project_points(points: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """Image coordinates ``(u, v)`` of homogeneous grid points through ``projection``.

    Args:
        points: (M, 4) homogeneous CT grid coordinates.
        projection: (N, 3, 4) matrices.
    Returns:
        (N, M, 2) ``(u, v)`` in the image's [-1, 1] frame; points with ``s <= 0`` (behind a cone source or on its
        plane) get a coordinate outside the image, so they read zero.
    """
    if projection.dim() != 3 or projection.shape[1:] != (3, 4):
        raise ValueError(f"projection matrices must be (N, 3, 4), got {tuple(projection.shape)}")
    return _dehomogenize(torch.einsum("nij,mj->nmi", projection.to(points.dtype), points))


def project_point_sets(points: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """:func:`project_points` with one set of points per case: ``points`` (N, M, 4), ``projection`` (N, 3, 4) ->
    (N, M, 2)."""
    if projection.dim() != 3 or projection.shape[1:] != (3, 4):
        raise ValueError(f"projection matrices must be (N, 3, 4), got {tuple(projection.shape)}")
    if points.dim() != 3 or points.shape[-1] != 4 or points.shape[0] != projection.shape[0]:
        raise ValueError(f"points must be (N, M, 4) for {projection.shape[0]} matrices, got {tuple(points.shape)}")
    return _dehomogenize(torch.einsum("nij,nmj->nmi", projection.to(points.dtype), points))


def _dehomogenize(homogeneous: torch.Tensor) -> torch.Tensor:
    """``(u s, v s, s)`` (..., 3) -> ``(u, v)`` (..., 2); ``s <= 0`` -> outside the image."""
    depth = homogeneous[..., 2:3]
    valid = depth > HOMOGENEOUS_EPS
    uv = homogeneous[..., :2] / torch.where(valid, depth, torch.ones_like(depth))
    return torch.where(valid, uv, torch.full_like(uv, OUTSIDE_UV))


def _matrix_bytes(projection: torch.Tensor) -> bytes:
    """The matrices' values as float32 bytes on the host (one device read)."""
    return projection.detach().float().cpu().numpy().tobytes()


class SamplingGridCache:
    """LRU cache of ``grid_sample`` grids (N, 1, D*H*W, 2) keyed by the matrices' values and the grid shape.

    A key needs the matrices' values on the host: they are read once per matrix tensor (and in-place version), not
    once per lookup, so a forward that lifts at several scales (and a discriminator called on real and fake volumes
    with the same batch) waits for the device once per view, not once per call. A miss costs one (N, M, 3) product.
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_SIZE) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = int(max_entries)
        self._grids: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._points: dict[tuple, torch.Tensor] = {}
        # id(matrix tensor) -> (the tensor, its in-place version, its values as bytes); the tensor is kept so that
        # its id cannot be reused by another tensor while the entry lives
        self._values: OrderedDict[int, tuple[torch.Tensor, int, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._grids.clear()
        self._points.clear()
        self._values.clear()

    def _values_of(self, projection: torch.Tensor) -> bytes:
        """The matrices' values as bytes, read from the device once per tensor and version (every time for an
        inference tensor, which has no version counter to tell an in-place change)."""
        if projection.is_inference():
            return _matrix_bytes(projection)
        entry = self._values.get(id(projection))
        if entry is not None and entry[0] is projection and entry[1] == projection._version:
            return entry[2]
        values = _matrix_bytes(projection)
        self._values[id(projection)] = (projection, projection._version, values)
        while len(self._values) > max(self.max_entries, 1):
            self._values.popitem(last=False)
        return values

    def points(self, shape: tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (shape, str(device), dtype)
        if key not in self._points:
            self._points[key] = homogeneous_voxel_grid(shape, device, dtype)
        return self._points[key]

    def grid(self, projection: torch.Tensor, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """The sampling grid (N, 1, D*H*W, 2) of ``projection`` (N, 3, 4) for a (D, H, W) grid."""
        shape3 = tuple(int(s) for s in shape)
        if len(shape3) != 3:
            raise ValueError(f"grid shape must be (D, H, W), got {tuple(shape)}")
        geometry = projection.detach()
        key = (shape3, str(projection.device), dtype, tuple(geometry.shape), self._values_of(projection))
        if self.max_entries and key in self._grids:
            self.hits += 1
            self._grids.move_to_end(key)
            return self._grids[key]
        self.misses += 1
        points = self.points(shape3, projection.device, torch.float32)
        grid = project_points(points, geometry.float()).unsqueeze(1).to(dtype)
        if self.max_entries:
            self._grids[key] = grid
            while len(self._grids) > self.max_entries:
                self._grids.popitem(last=False)
        return grid


def lift_view(
    features: torch.Tensor,
    projection: torch.Tensor,
    shape: Sequence[int],
    cache: SamplingGridCache | None = None,
) -> torch.Tensor:
    """Back-project one view's 2D features into a 3D grid along its rays.

    Args:
        features: (N, C, rows, cols) feature map (any resolution: coordinates are normalized).
        projection: (N, 3, 4) the view's matrices.
        shape: (D, H, W) of the output grid.
        cache: optional grid cache.
    Returns:
        (N, C, D, H, W): each voxel holds the bilinear sample of ``features`` where it projects (0 outside).
    """
    if features.dim() != 4:
        raise ValueError(f"view features must be (N, C, rows, cols), got {tuple(features.shape)}")
    if projection.shape[0] != features.shape[0]:
        raise ValueError(f"{projection.shape[0]} projection matrices for a batch of {features.shape[0]} images")
    depth, height, width = (int(s) for s in shape)
    grid = (cache or SamplingGridCache(max_entries=0)).grid(projection, (depth, height, width), features.dtype)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.view(features.shape[0], features.shape[1], depth, height, width)


def fuse_lifted(volumes: Sequence[torch.Tensor], fusion: str = "mean_var") -> torch.Tensor:
    """Fuse per-view lifted volumes, each (N, C, D, H, W), into (N, C * k, D, H, W).

    ``mean_var``: mean and (biased) variance over views, k = 2 (variance 0 for a single view); ``mean``: k = 1;
    ``mean_var_prod``: also the product over views, k = 3 (an AND of the views: large only where every view's
    ray is bright, which the sum-like statistics cannot express in one layer). All are symmetric in the views, so
    any number and order of views gives a volume of the same layout.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
    if not volumes:
        raise ValueError("fuse_lifted needs at least one view")
    stacked = torch.stack(tuple(volumes), dim=0)
    mean = stacked.mean(dim=0)
    if fusion == "mean":
        return mean
    variance = (stacked - mean).pow(2).mean(dim=0)
    if fusion == "mean_var":
        return torch.cat((mean, variance), dim=1)
    return torch.cat((mean, variance, stacked.prod(dim=0)), dim=1)


def fusion_multiplier(fusion: str) -> int:
    """How many channels :func:`fuse_lifted` makes of each view channel."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
    return _FUSION_MULTIPLIER[fusion]
