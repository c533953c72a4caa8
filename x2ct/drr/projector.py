"""Line integrals of a volume along the rays of DRR views, in plain torch (CPU and CUDA, differentiable).

Two ray-marching methods, both integrating the trilinear interpolant of the volume over each ray's chord
through the volume box (voxel edges; values in the outer half-voxel shell equal the edge voxels):

* ``"trilinear"``: ``n_samples`` uniform midpoint-rule samples per ray between its box entry and exit, each
  a trilinear ``grid_sample`` of the 3D volume; sum times the step length.
* ``"joseph"`` (Joseph 1982): march plane by plane along the dominant axis (H for AP-like views, W for
  lateral-like): every ray meets every voxel plane once; bilinearly sample that 2D slice at the meeting point and
  weight by the path length between planes, ``s_axis / |u_axis|`` (only the part inside the box where a ray
  leaves through a side face). One cheap 2D sample per plane instead of ``n_samples`` 3D samples per ray;
  ``n_samples`` is ignored. For a parallel AP beam it reduces to exactly ``sum_h mu[r, h, c] * s_H``. Measured
  on 128^3 volumes (benchmarks/bench_drr.py): about 12x faster than trilinear at 256 samples on 2 CPU threads,
  more accurate than it at 0 and 90 degrees and about as accurate as 128 trilinear samples at 75 degrees
  (relative L2 error vs 2048 samples: ~5e-5 and ~5e-4).

The sampling grids depend only on (shape, spacing, views, isocentre, geometry), so a :class:`RayProjector`
precomputes them once and can be applied to any number of volumes (batched as channels of one ``grid_sample``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from x2ct.drr.geometry import (
    AXIS_D,
    AXIS_H,
    AXIS_W,
    MIN_AXIS_COMPONENT,
    RayBundle,
    ViewSpec,
    clip_to_box,
    is_lateral_like,
    view_rays,
    volume_box_mm,
    volume_centre_mm,
)

METHODS: tuple[str, ...] = ("trilinear", "joseph")
# Upper bound on the elements of one grid_sample output (samples x volumes); larger work is split in chunks.
DEFAULT_MAX_CHUNK_ELEMENTS: int = 1 << 26


def check_volume(mu: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Validate a (D, H, W) or (B, D, H, W) floating volume and its spacing; return it as (B, D, H, W)."""
    if not isinstance(mu, torch.Tensor):
        raise TypeError(f"volume must be a torch.Tensor, got {type(mu).__name__}")
    if mu.ndim not in (3, 4):
        raise ValueError(f"volume must be (D, H, W) or (B, D, H, W), got shape {tuple(mu.shape)}")
    if not mu.is_floating_point():
        raise ValueError(f"volume must be a floating tensor, got dtype {mu.dtype}")
    if min(mu.shape[-3:]) < 2:
        raise ValueError(f"every volume axis needs at least 2 voxels, got shape {tuple(mu.shape)}")
    if len(spacing) != 3 or min(float(s) for s in spacing) <= 0:
        raise ValueError(f"spacing must be three positive mm values (D, H, W), got {tuple(spacing)}")
    return mu if mu.ndim == 4 else mu.unsqueeze(0)


def resolved_device(device: str | torch.device) -> torch.device:
    """``device`` with its index made explicit (``"cuda"`` -> ``cuda:<current>``), so that equal devices compare
    equal whichever way they were named."""
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return resolved


class RayProjector:
    """Precomputed ray-marching plan for fixed views over volumes of one shape and spacing.

    Args:
        bundles: the rays of each view (see :func:`x2ct.drr.geometry.view_rays`).
        shape: volume shape (D, H, W); spacing: voxel size in mm (D, H, W).
        method: ``"trilinear"`` or ``"joseph"`` (see the module docstring).
        n_samples: samples per ray for ``"trilinear"`` (>= 1).
        device, dtype: where and in which precision the volumes will be.
        max_chunk_elements: largest grid_sample output per call (memory bound), split in chunks above it.

    Calling it with a (B, D, H, W) tensor returns one (B, R, C) line-integral tensor per view.
    """

    def __init__(
        self,
        bundles: Sequence[RayBundle],
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        method: str = "trilinear",
        n_samples: int = 256,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown DRR method {method!r}; expected one of {METHODS}")
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if max_chunk_elements < 1:
            raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
        self.shape = tuple(int(n) for n in shape)
        self.spacing = tuple(float(s) for s in spacing)
        self.method = method
        self.n_samples = int(n_samples)
        self.device = resolved_device(device)
        self.dtype = dtype
        self.max_chunk_elements = int(max_chunk_elements)
        self.view_shapes = [(b.layout.rows, b.layout.cols) for b in bundles]
        if method == "trilinear":
            self._groups = [self._plan_trilinear(list(bundles))]
            self._view_slots = self._slots([0] * len(bundles))
        else:
            axes = [AXIS_W if is_lateral_like(b.view.angle_deg) else AXIS_H for b in bundles]
            self._groups = [
                self._plan_joseph([b for b, a in zip(bundles, axes, strict=True) if a == axis], axis)
                for axis in (AXIS_H, AXIS_W)
            ]
            self._view_slots = self._slots([0 if a == AXIS_H else 1 for a in axes])

    @staticmethod
    def _slots(group_of_view: list[int]) -> list[tuple[int, int]]:
        """(group, index within group) of each view."""
        counters: dict[int, int] = {}
        slots = []
        for group in group_of_view:
            slots.append((group, counters.get(group, 0)))
            counters[group] = counters.get(group, 0) + 1
        return slots

    # ------------------------------------------------------------------ trilinear
    def _plan_trilinear(self, bundles: list[RayBundle]) -> dict:
        if not bundles:
            return {"empty": True}
        origins = np.concatenate([b.origins.reshape(-1, 3) for b in bundles])
        directions = np.concatenate([b.directions.reshape(-1, 3) for b in bundles])
        t_start = np.concatenate([np.full(b.layout.rows * b.layout.cols, b.t_start) for b in bundles])
        low, high = volume_box_mm(self.shape, self.spacing)
        t_in, t_out = clip_to_box(origins, directions, t_start, low, high)
        entry = origins + t_in[:, None] * directions
        step = (t_out - t_in) / self.n_samples
        kw = {"device": self.device, "dtype": self.dtype}
        # grid_sample coordinates are affine in the voxel index: norm = index * 2 / (N - 1) - 1; the samples of a
        # ray are entry + (k + 0.5) * delta. Order (x, y, z) = (W, H, D). Samples in the outer half-voxel shell
        # fall slightly outside [-1, 1]: padding_mode="border" gives them the edge voxels' values.
        scale = 2.0 / ((np.asarray(self.shape, dtype=np.float64) - 1.0) * np.asarray(self.spacing))
        entry_n = torch.as_tensor((entry * scale - 1.0)[:, ::-1].copy(), **kw)
        delta_n = torch.as_tensor((step[:, None] * directions * scale)[:, ::-1].copy(), **kw)
        fractions = (torch.arange(self.n_samples, **kw) + 0.5)[None, :, None]
        n_rays = origins.shape[0]
        # Split rays over the grid's batch axis so grid_sample's CPU kernel (parallel over its batch) uses all
        # threads; on CUDA one batch entry is enough.
        n_parts = torch.get_num_threads() if self.device.type == "cpu" else 1
        rays_per_part = -(-n_rays // n_parts)
        grid = torch.zeros(n_parts * rays_per_part, self.n_samples, 3, **kw)
        torch.addcmul(entry_n[:, None, :], fractions, delta_n[:, None, :], out=grid[:n_rays])
        grid = grid.reshape(n_parts, rays_per_part, self.n_samples, 1, 3)
        return {
            "empty": False,
            "grid": grid.contiguous(),
            "step": torch.as_tensor(step, **kw),
            "n_rays": n_rays,
            "offsets": np.cumsum([0] + [b.layout.rows * b.layout.cols for b in bundles]),
        }

    def _run_trilinear(self, plan: dict, mu: torch.Tensor) -> torch.Tensor:
        batch = mu.shape[0]
        grid = plan["grid"]
        n_parts, rays_per_part = grid.shape[:2]
        volume = mu.unsqueeze(0).expand(n_parts, *mu.shape)  # (P, B, D, H, W), no copy
        rays_chunk = max(1, self.max_chunk_elements // (n_parts * batch * self.n_samples))
        sums = []
        for start in range(0, rays_per_part, rays_chunk):
            samples = F.grid_sample(
                volume,
                grid[:, start : start + rays_chunk],
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )  # (P, B, rays, n_samples, 1)
            sums.append(samples.sum(dim=(3, 4)))
        per_part = torch.cat(sums, dim=2)  # (P, B, rays_per_part)
        line = per_part.permute(1, 0, 2).reshape(batch, -1)[:, : plan["n_rays"]]
        return line * plan["step"]

    # ------------------------------------------------------------------ Joseph
    def _plan_joseph(self, bundles: list[RayBundle], axis: int) -> dict:
        if not bundles:
            return {"empty": True}
        origins = np.concatenate([b.origins.reshape(-1, 3) for b in bundles])
        directions = np.concatenate([b.directions.reshape(-1, 3) for b in bundles])
        t_start = np.concatenate([np.full(b.layout.rows * b.layout.cols, b.t_start) for b in bundles])
        along = directions[:, axis]
        if np.any(np.abs(along) < MIN_AXIS_COMPONENT):
            raise ValueError(
                f"Joseph marching along axis {axis}: some rays run (almost) parallel to the voxel planes "
                f"(|u| component < {MIN_AXIS_COMPONENT}); use method='trilinear' or a larger sod_mm"
            )
        other = AXIS_W if axis == AXIS_H else AXIS_H
        n_planes = self.shape[axis]
        s = np.asarray(self.spacing)
        low, high = volume_box_mm(self.shape, self.spacing)
        t_in, t_out = clip_to_box(origins, directions, t_start, low, high)
        # Ray meets plane k (x_axis = k * s_axis) at t_k = t0 + k * dt, at in-plane voxel indices
        # index_at_0 + k * index_step (per-ray values in float64, the (K, N) tensors in the volume's dtype).
        t0 = -origins[:, axis] / along
        dt = s[axis] / along
        in_plane = [AXIS_D, other]
        index_at_0 = (origins[:, in_plane] + t0[:, None] * directions[:, in_plane]) / s[in_plane]
        index_step = dt[:, None] * directions[:, in_plane] / s[in_plane]
        kw = {"device": self.device, "dtype": self.dtype}
        k = torch.arange(n_planes, **kw)[:, None]
        # Plane k stands for the ray cell [t_k - |dt|/2, t_k + |dt|/2]; its weight is the part of that cell
        # inside the clipped chord [t_in, t_out] (mm): |dt| inside the volume, a fraction where the ray leaves it
        # through a side face, 0 outside. t is taken relative to t_in to keep float32 precise.
        t_rel = torch.as_tensor(t0 - t_in, **kw)[None, :] + k * torch.as_tensor(dt, **kw)[None, :]  # (K, N)
        half = torch.as_tensor(np.abs(dt) / 2.0, **kw)[None, :]
        length = torch.as_tensor(t_out - t_in, **kw)[None, :]
        weight = (torch.minimum(t_rel + half, length) - torch.clamp_min(t_rel - half, 0.0)).clamp_min(0.0)
        index = torch.as_tensor(index_at_0, **kw)[None] + k[..., None] * torch.as_tensor(index_step, **kw)[None]
        sizes = torch.as_tensor([self.shape[AXIS_D], self.shape[other]], **kw)
        normalized = torch.minimum(index.clamp_min(0.0), sizes - 1) * (2.0 / (sizes - 1)) - 1.0
        grid = normalized.flip(-1).unsqueeze(1)  # (K, 1, N, 2) with (x, y) = (other, D)
        return {
            "empty": False,
            "axis": axis,
            "grid": grid.contiguous(),
            "weight": weight.contiguous(),
            "offsets": np.cumsum([0] + [b.layout.rows * b.layout.cols for b in bundles]),
        }

    def _run_joseph(self, plan: dict, mu: torch.Tensor) -> torch.Tensor:
        batch = mu.shape[0]
        # (B, D, H, W) -> slices along the marching axis: (K, B, D, other)
        order = (2, 0, 1, 3) if plan["axis"] == AXIS_H else (3, 0, 1, 2)
        slices = mu.permute(order).contiguous()
        grid, weight = plan["grid"], plan["weight"]
        n_planes, _, n_rays, _ = grid.shape
        rays_chunk = max(1, self.max_chunk_elements // (n_planes * batch))
        sums = []
        for start in range(0, n_rays, rays_chunk):
            stop = start + rays_chunk
            samples = F.grid_sample(
                slices, grid[:, :, start:stop], mode="bilinear", padding_mode="border", align_corners=True
            )  # (K, B, 1, rays)
            sums.append((samples[:, :, 0, :] * weight[:, None, start:stop]).sum(dim=0))
        return torch.cat(sums, dim=1)

    # ------------------------------------------------------------------ apply
    def __call__(self, mu: torch.Tensor) -> list[torch.Tensor]:
        """Line integrals ``sum mu dl`` of a (B, D, H, W) volume (units: mu's times mm) -> list of (B, R, C)."""
        if mu.ndim != 4 or tuple(mu.shape[1:]) != self.shape:
            raise ValueError(f"projector planned for volumes (B, {self.shape}), got {tuple(mu.shape)}")
        if resolved_device(mu.device) != self.device or mu.dtype != self.dtype:
            raise ValueError(f"projector planned for {self.dtype} on {self.device}, got {mu.dtype} on {mu.device}")
        run = self._run_trilinear if self.method == "trilinear" else self._run_joseph
        outputs = [None if plan["empty"] else run(plan, mu) for plan in self._groups]
        images = []
        for (group, index), (rows, cols) in zip(self._view_slots, self.view_shapes, strict=True):
            offsets = self._groups[group]["offsets"]
            flat = outputs[group][:, offsets[index] : offsets[index + 1]]
            images.append(flat.reshape(mu.shape[0], rows, cols))
        return images


def build_projector(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    views: Sequence[ViewSpec],
    iso_mm: Sequence[float] | np.ndarray | None = None,
    *,
    geometry: str = "cone",
    sod_mm: float = 850.0,
    n_samples: int = 256,
    method: str = "trilinear",
    detector_shape: tuple[int, int] | None = None,
    detector_pitch_mm: tuple[float, float] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RayProjector:
    """Plan the rays of ``views`` (isocentre ``iso_mm`` (3,) in mm, None = volume centre)."""
    if not views:
        raise ValueError("at least one view is needed")
    iso = volume_centre_mm(shape, spacing) if iso_mm is None else np.asarray(iso_mm, dtype=np.float64)
    bundles = [view_rays(v, shape, spacing, iso, geometry, sod_mm, detector_shape, detector_pitch_mm) for v in views]
    return RayProjector(bundles, shape, spacing, method, n_samples, device, dtype)


def project_mu(
    mu: torch.Tensor,
    spacing: tuple[float, float, float],
    views: Sequence[ViewSpec],
    iso_mm: Sequence[float] | np.ndarray | None = None,
    *,
    geometry: str = "cone",
    sod_mm: float = 850.0,
    n_samples: int = 256,
    method: str = "trilinear",
    detector_shape: tuple[int, int] | None = None,
    detector_pitch_mm: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Line integrals of an attenuation volume ``mu`` (1/mm, (D, H, W) or (B, D, H, W)) for ``views``.

    Returns (V, R, C) or (B, V, R, C) on mu's device and dtype, dimensionless ``sum mu dl``; differentiable
    w.r.t. ``mu``. All views must share one detector shape (else use :func:`build_projector` directly).
    """
    batched = check_volume(mu, spacing)
    projector = build_projector(
        tuple(batched.shape[1:]),
        tuple(float(s) for s in spacing),
        views,
        iso_mm,
        geometry=geometry,
        sod_mm=sod_mm,
        n_samples=n_samples,
        method=method,
        detector_shape=detector_shape,
        detector_pitch_mm=detector_pitch_mm,
        device=batched.device,
        dtype=batched.dtype,
    )
    stacked = stack_views(projector(batched), [v.name for v in views])
    return stacked if mu.ndim == 4 else stacked[0]


def stack_views(images: list[torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """Stack per-view (B, R, C) images into (B, V, R, C); raise ValueError naming views of another shape."""
    shapes = {tuple(img.shape[1:]) for img in images}
    if len(shapes) > 1:
        listing = ", ".join(f"{n}: {tuple(img.shape[1:])}" for n, img in zip(names, images, strict=True))
        raise ValueError(f"views have different detector shapes ({listing}); set detector_shape to stack them")
    return torch.stack(images, dim=1)
