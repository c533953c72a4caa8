"""Axis conventions of the X2CT-GAN lifting: view layout vs CT order, and copying a 2D map along its rays.

A CT tensor is ``(N, C, D, H, W)`` (see :mod:`x2ct.io.volume`). View 1 (AP, ``xray1``) has its rays along H and its
image plane is D x W, so ``xray1[r, c]`` lines up with ``ct[r, :, c]``. View 2 (lateral, ``xray2``) has its rays
along W and its image plane is D x H, so ``xray2[r, c]`` lines up with ``ct[r, c, :]``. A *view-layout* tensor is
``(N, C, ray, row, col)``. These helpers are exact only for the aligned, orthogonal views of the X2CT convention;
geometry-aware lifting through projection matrices lives in :mod:`x2ct.drr.projection`.
"""

from __future__ import annotations

from typing import Literal

import torch

ViewName = Literal["xray1", "xray2"]
VIEW_NAMES: tuple[str, str] = ("xray1", "xray2")

# Permutations of (N, C, ray, row, col) into (N, C, D, H, W) and back. xray1: ray=H, row=D, col=W.
# xray2: ray=W, row=D, col=H. (The official CTOrder_Xray1 = [0, 1, 3, 2, 4], CTOrder_Xray2 = [0, 1, 4, 2, 3].)
_VIEW_TO_CT: dict[str, tuple[int, ...]] = {"xray1": (0, 1, 3, 2, 4), "xray2": (0, 1, 3, 4, 2)}
_CT_TO_VIEW: dict[str, tuple[int, ...]] = {"xray1": (0, 1, 3, 2, 4), "xray2": (0, 1, 4, 2, 3)}


def check_view(view: str) -> None:
    if view not in VIEW_NAMES:
        raise ValueError(f"view must be one of {VIEW_NAMES}, got {view!r}")


def view_to_ct(volume: torch.Tensor, view: ViewName) -> torch.Tensor:
    """Permute a view-layout tensor ``(N, C, ray, row, col)`` of ``view`` into CT order ``(N, C, D, H, W)``."""
    check_view(view)
    return volume.permute(*_VIEW_TO_CT[view])


def ct_to_view(volume: torch.Tensor, view: ViewName) -> torch.Tensor:
    """Permute a CT-order tensor ``(N, C, D, H, W)`` into the view layout ``(N, C, ray, row, col)`` of ``view``."""
    check_view(view)
    return volume.permute(*_CT_TO_VIEW[view])


def lift_along_ray(image: torch.Tensor, ray_length: int) -> torch.Tensor:
    """Copy a 2D map ``(N, C, row, col)`` along a new ray axis: ``(N, C, ray_length, row, col)`` (a view, no copy)."""
    if image.dim() != 4:
        raise ValueError(f"expected a 2D map (N, C, rows, cols), got shape {tuple(image.shape)}")
    n, c, rows, cols = image.shape
    return image.unsqueeze(2).expand(n, c, ray_length, rows, cols)


def xray_to_ct_volume(image: torch.Tensor, view: ViewName, ray_length: int) -> torch.Tensor:
    """Back-project an image of ``view`` by copying it along its rays, in CT order.

    ``xray1 (N, C, D, W) -> (N, C, D, ray_length, W)``; ``xray2 (N, C, D, H) -> (N, C, D, H, ray_length)``.
    """
    return view_to_ct(lift_along_ray(image, ray_length), view)


def fuse_views(view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """Connection-C: the mean of the two branches' view-layout tensors, in CT order ``(N, C, D, H, W)``."""
    ct1, ct2 = view_to_ct(view1, "xray1"), view_to_ct(view2, "xray2")
    if ct1.shape != ct2.shape:
        raise ValueError(f"view tensors disagree in CT order: {tuple(ct1.shape)} vs {tuple(ct2.shape)}")
    return (ct1 + ct2) / 2
