"""X2CT-GAN networks: biplanar and single-view generators, conditional 3D PatchGAN, weight init."""

from __future__ import annotations

from x2ct.models.axes import VIEW_NAMES, ct_to_view, fuse_views, view_to_ct, xray_to_ct_volume
from x2ct.models.discriminator import PatchDiscriminator3D
from x2ct.models.generator import BiplanarGenerator, SingleViewGenerator
from x2ct.models.init import init_weights

__all__ = [
    "VIEW_NAMES",
    "BiplanarGenerator",
    "PatchDiscriminator3D",
    "SingleViewGenerator",
    "ct_to_view",
    "fuse_views",
    "init_weights",
    "view_to_ct",
    "xray_to_ct_volume",
]
