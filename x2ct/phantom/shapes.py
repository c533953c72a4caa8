"""Signed-distance shapes evaluated on a world grid in canonical millimetres.

A shape has a method ``sdf(d, h, w)`` on broadcastable coordinate arrays (mm; ``d`` of shape (nd, 1, 1),
``h`` (1, nh, 1), ``w`` (1, 1, nw)) that returns the approximate signed distance in mm (negative inside),
float32 of shape (nd, nh, nw) (or broadcastable to it), plus a conservative axis-aligned bounding box
``bounds_mm()`` so that it is only ever evaluated near itself. The distances are first-order accurate near
the surface (what the soft, partial-volume edges and the cortical shell need) and only bounded far from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

Bounds = tuple[np.ndarray, np.ndarray]
"""Axis-aligned box (low corner, high corner) in canonical mm, each (3,) in D, H, W order."""

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]

BOUNDS_PAD_MM: float = 2.0
"""Extra margin around every bounding box so soft edges and shells are never clipped."""

_EPS: float = 1e-6


class Shape(Protocol):
    def bounds_mm(self) -> Bounds: ...

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray: ...


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < _EPS:
        raise ValueError(f"cannot normalize a zero-length direction {v}")
    return np.asarray(v, dtype=np.float64) / n


def _project(coords: Coords, origin: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(p - origin) . axis on the broadcast grid, float32 (nd, nh, nw)."""
    d, h, w = coords
    return (
        (d - np.float32(origin[0])) * np.float32(axis[0])
        + (h - np.float32(origin[1])) * np.float32(axis[1])
        + (w - np.float32(origin[2])) * np.float32(axis[2])
    )


def ellipse_sdf(
    e1: np.ndarray,
    e2: np.ndarray,
    r1: np.ndarray | float,
    r2: np.ndarray | float,
    e3: np.ndarray | None = None,
    r3: float | None = None,
) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (or ellipsoid with ``e3``/``r3``) centred at
    the origin: ``k0 (k0 - 1) / k1`` with ``k0 = |e / r|``, ``k1 = |e / r^2|`` (exact on the surface,
    first-order near it). Radii may be arrays (per-voxel radii)."""
    a1 = e1 / r1
    a2 = e2 / r2
    b1 = a1 / r1
    b2 = a2 / r2
    k0sq = a1 * a1 + a2 * a2
    k1sq = b1 * b1 + b2 * b2
    r_min = float(np.min(r1)), float(np.min(r2))
    r_max = float(np.max(r1)), float(np.max(r2))
    if e3 is not None and r3 is not None:
        a3 = e3 / np.float32(r3)
        b3 = a3 / np.float32(r3)
        k0sq += a3 * a3
        k1sq += b3 * b3
        r_min, r_max = (*r_min, r3), (*r_max, r3)
    k0 = np.sqrt(k0sq)
    # k0 / k1 is the local length scale, always within [min radius, max radius]; clipping also handles the
    # centre, where both vanish.
    scale = np.clip(k0 / np.maximum(np.sqrt(k1sq), _EPS), min(r_min), max(r_max))
    return (k0 - 1.0) * scale


@dataclass(frozen=True)
class EllipticTube:
    """A tube of elliptic cross-section along the segment ``start`` -> ``end`` (canonical mm, D/H/W).

    ``across`` is a direction (made perpendicular to the segment) along which the cross-section radius is
    ``radius_across``; the third direction has ``radius_side``. ``ends`` chooses ellipsoidal caps
    (``"round"``) or flat ends (``"flat"``).
    """

    start: np.ndarray
    end: np.ndarray
    across: np.ndarray
    radius_side: float
    radius_across: float
    ends: Literal["round", "flat"] = "round"
    _axes: tuple[np.ndarray, np.ndarray, np.ndarray, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if min(self.radius_side, self.radius_across) <= 0:
            raise ValueError(f"tube radii must be positive, got {self.radius_side}, {self.radius_across}")
        start = np.asarray(self.start, dtype=np.float64)
        end = np.asarray(self.end, dtype=np.float64)
        axis = _unit(end - start)
        across = np.asarray(self.across, dtype=np.float64)
        across = _unit(across - axis * float(axis @ across))
        side = np.cross(axis, across)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "_axes", (axis, across, side, float(np.linalg.norm(end - start))))

    def bounds_mm(self) -> Bounds:
        axis, across, side, _ = self._axes
        # half-extent of the elliptic cross-section along each world axis, plus the caps along the axis
        pad = np.hypot(self.radius_side * side, self.radius_across * across) + BOUNDS_PAD_MM
        if self.ends == "round":
            pad = pad + min(self.radius_side, self.radius_across) * np.abs(axis)
        return np.minimum(self.start, self.end) - pad, np.maximum(self.start, self.end) + pad

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        axis, across, side, length = self._axes
        t = _project((d, h, w), self.start, axis)
        e_side = _project((d, h, w), self.start, side)
        e_across = _project((d, h, w), self.start, across)
        if self.ends == "round":
            along = t - np.clip(t, 0.0, length)
            cap = min(self.radius_side, self.radius_across)
            return ellipse_sdf(e_side, e_across, self.radius_side, self.radius_across, along, cap)
        radial = ellipse_sdf(e_side, e_across, self.radius_side, self.radius_across)
        half = np.float32(length / 2)
        return np.maximum(radial, np.abs(t - half) - half)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with centre (mm) and semi-axes ``radii`` along the columns of ``frame`` (3x3, D/H/W)."""

    centre: np.ndarray
    radii: tuple[float, float, float]
    frame: np.ndarray = field(default_factory=lambda: np.eye(3))

    def bounds_mm(self) -> Bounds:
        c = np.asarray(self.centre, dtype=np.float64)
        extent = np.abs(np.asarray(self.frame)) @ np.asarray(self.radii, dtype=np.float64) + BOUNDS_PAD_MM
        return c - extent, c + extent

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        e = [_project((d, h, w), self.centre, self.frame[:, k]) for k in range(3)]
        return ellipse_sdf(e[1], e[2], self.radii[1], self.radii[2], e[0], self.radii[0])


@dataclass(frozen=True)
class VertebralBody:
    """Elliptic cylinder with slightly concave end plates, a waist and a flattened posterior wall.

    ``frame`` columns are the vertebra's local axes in canonical mm: (cranio-caudal z, antero-posterior y,
    lateral x). Dimensions are full diameters / heights in mm.
    """

    centre: np.ndarray
    frame: np.ndarray
    width: float
    depth: float
    height: float
    endplate_concavity: float
    waist: float  # fractional narrowing of the radii at mid-height
    posterior_flattening: float  # fraction of the depth cut off at the back

    def bounds_mm(self) -> Bounds:
        c = np.asarray(self.centre, dtype=np.float64)
        half = np.array([self.height / 2, self.depth / 2, self.width / 2])
        extent = np.abs(np.asarray(self.frame)) @ half + BOUNDS_PAD_MM
        return c - extent, c + extent

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        z = _project((d, h, w), self.centre, self.frame[:, 0])
        y = _project((d, h, w), self.centre, self.frame[:, 1])
        x = _project((d, h, w), self.centre, self.frame[:, 2])
        half_height = np.float32(self.height / 2)
        z_norm_sq = np.minimum((z / half_height) ** 2, 1.0)
        narrowing = 1.0 - np.float32(self.waist) * (1.0 - z_norm_sq)
        rx = np.float32(self.width / 2) * narrowing
        ry = np.float32(self.depth / 2) * narrowing
        radial = ellipse_sdf(x, y, rx, ry)
        radial = np.maximum(radial, y - np.float32(self.depth * (0.5 - self.posterior_flattening)))
        rho_sq = np.minimum((x / rx) ** 2 + (y / ry) ** 2, 1.0)
        plate = half_height - np.float32(self.endplate_concavity) * (1.0 - rho_sq)
        return np.maximum(radial, np.abs(z) - plate)


@dataclass(frozen=True)
class Intersection:
    """The region inside all of ``shapes``; its box is the overlap of theirs."""

    shapes: tuple[Shape, ...]

    def bounds_mm(self) -> Bounds:
        boxes = [s.bounds_mm() for s in self.shapes]
        return np.max([b[0] for b in boxes], axis=0), np.min([b[1] for b in boxes], axis=0)

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        result = self.shapes[0].sdf(d, h, w)
        for shape in self.shapes[1:]:
            result = np.maximum(result, shape.sdf(d, h, w))
        return result


@dataclass(frozen=True)
class EllipticColumn:
    """An elliptic cylinder parallel to the D axis through the whole volume: semi-axes ``radius_h`` and
    ``radius_w`` (mm) around (``centre_h``, ``centre_w``) (mm). Used for the torso outline. Its distance
    does not depend on D, so ``sdf`` returns shape (1, nh, nw), which broadcasts against the grid."""

    centre_h: float
    centre_w: float
    radius_h: float
    radius_w: float
    d_range: tuple[float, float] = (-1e4, 1e4)

    def bounds_mm(self) -> Bounds:
        lo = np.array([self.d_range[0], self.centre_h - self.radius_h, self.centre_w - self.radius_w])
        hi = np.array([self.d_range[1], self.centre_h + self.radius_h, self.centre_w + self.radius_w])
        return lo - BOUNDS_PAD_MM, hi + BOUNDS_PAD_MM

    def sdf(self, d: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        e_h = h - np.float32(self.centre_h)
        e_w = w - np.float32(self.centre_w)
        return ellipse_sdf(e_h, e_w, self.radius_h, self.radius_w)
