"""Painting shapes into a canonical voxel grid with soft (partial-volume) edges.

Voxel (i, j, k) has its centre at canonical millimetres (i * sd, j * sh, k * sw), the convention of
``Volume.mask_centroid_mm``. A shape's occupancy is the linear ramp ``clip(0.5 - sdf / edge, 0, 1)``: 1 well
inside, 0 well outside, 0.5 on the surface, over a transition ``edge`` mm wide (about one voxel), which
mimics the partial-volume effect of a real CT and keeps projections free of staircase artefacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from x2ct.phantom.shapes import Bounds, Coords, Shape

Region = tuple[slice, slice, slice]

SDF_OUTSIDE_MM: float = 1e3
"""Distance assigned to voxels no shape has reached (far outside every shape)."""


@dataclass(frozen=True)
class VoxelGrid:
    """Shape (D, H, W) and spacing (mm, D/H/W) of the canvas."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def region(self, bounds: Bounds) -> Region | None:
        """Voxel slices covering ``bounds`` (mm), clipped to the grid; None when they miss it."""
        lo, hi = bounds
        slices = []
        for axis in range(3):
            start = max(int(np.floor(lo[axis] / self.spacing[axis])), 0)
            stop = min(int(np.ceil(hi[axis] / self.spacing[axis])) + 1, self.shape[axis])
            if stop <= start:
                return None
            slices.append(slice(start, stop))
        return slices[0], slices[1], slices[2]

    def coords(self, region: Region) -> Coords:
        """Broadcastable voxel-centre coordinates (mm, float32) of ``region``: (nd,1,1), (1,nh,1), (1,1,nw)."""
        axes = [
            np.arange(s.start, s.stop, dtype=np.float32) * np.float32(sp)
            for s, sp in zip(region, self.spacing, strict=True)
        ]
        return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def occupancy(sdf: np.ndarray, edge_mm: float) -> np.ndarray:
    """Soft inside-fraction in [0, 1] of a signed distance field (mm) with a ramp ``edge_mm`` wide."""
    occ = np.float32(0.5) - sdf * np.float32(1.0 / edge_mm)
    return np.clip(occ, 0.0, 1.0, out=occ)


def paint(hu: np.ndarray, grid: VoxelGrid, shape: Shape, value_hu: float, edge_mm: float) -> None:
    """Blend ``value_hu`` into ``hu`` (D, H, W, in place) by the shape's soft occupancy."""
    region = grid.region(shape.bounds_mm())
    if region is None:
        return
    occ = occupancy(shape.sdf(*grid.coords(region)), edge_mm)
    target = hu[region]
    target += occ * (np.float32(value_hu) - target)


def _intersect(a: Region, b: Region) -> Region | None:
    out = []
    for sa, sb in zip(a, b, strict=True):
        start, stop = max(sa.start, sb.start), min(sa.stop, sb.stop)
        if stop <= start:
            return None
        out.append(slice(start, stop))
    return out[0], out[1], out[2]


def _local(inner: Region, outer: Region) -> Region:
    """``inner`` expressed relative to the start of ``outer``."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True))  # type: ignore[return-value]


class BoneCanvas:
    """Union (minus cut-outs) of bone shapes in a local box, composited as cortical shell over cancellous
    core.

    The union of signed distances is their minimum, so the cortical shell follows the outer surface of the
    combined bone and never shows as internal walls where parts overlap.
    """

    def __init__(self, grid: VoxelGrid, shapes: list[Shape]) -> None:
        if not shapes:
            raise ValueError("a bone needs at least one shape")
        boxes = [s.bounds_mm() for s in shapes]
        bounds = (np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0))
        self.grid = grid
        self.region = grid.region(bounds)
        self.sdf: np.ndarray | None = None
        if self.region is None:
            return
        size = tuple(s.stop - s.start for s in self.region)
        self.sdf = np.full(size, SDF_OUTSIDE_MM, dtype=np.float32)
        for shape in shapes:
            self._combine(shape, np.minimum, negate=False)

    def _combine(self, shape: Shape, op: np.ufunc, negate: bool) -> None:
        if self.region is None or self.sdf is None:
            return
        part = self.grid.region(shape.bounds_mm())
        part = None if part is None else _intersect(part, self.region)
        if part is None:
            return
        values = shape.sdf(*self.grid.coords(part))
        if negate:
            np.negative(values, out=values)
        local = self.sdf[_local(part, self.region)]
        op(local, values, out=local)

    def cut(self, shape: Shape) -> None:
        """Remove ``shape`` from the bone (e.g. the vertebral canal)."""
        self._combine(shape, np.maximum, negate=True)

    def composite(
        self, hu: np.ndarray, cortical_hu: float, cancellous_hu: float, shell_mm: float, edge_mm: float
    ) -> tuple[Region, np.ndarray] | None:
        """Blend the bone into ``hu`` (in place): cortical HU in the outer ``shell_mm``, cancellous inside.
        Returns the region and its soft bone occupancy in [0, 1] (for the label map), or None if empty."""
        if self.region is None or self.sdf is None:
            return None
        outer = occupancy(self.sdf, edge_mm)
        inner = occupancy(self.sdf + np.float32(shell_mm), edge_mm)
        target = hu[self.region]
        target += outer * (np.float32(cortical_hu) - target)
        target += inner * (np.float32(cancellous_hu) - target)
        return self.region, outer
