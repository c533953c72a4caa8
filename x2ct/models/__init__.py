"""Networks: the X2CT-GAN biplanar and single-view generators, the geometry-aware ray-lifting and ray-implicit
generators, the conditional 3D PatchGAN, weight init."""

from __future__ import annotations

from x2ct.models.axes import VIEW_NAMES, ct_to_view, fuse_views, view_to_ct, xray_to_ct_volume
from x2ct.models.discriminator import PatchDiscriminator3D
from x2ct.models.generator import BiplanarGenerator, SingleViewGenerator
from x2ct.models.init import init_weights
from x2ct.models.ray_implicit_generator import RayImplicitGenerator
from x2ct.models.ray_lifting_generator import RayLiftingGenerator

__all__ = [
    "VIEW_NAMES",
    "BiplanarGenerator",
    "PatchDiscriminator3D",
    "RayImplicitGenerator",
    "RayLiftingGenerator",
    "SingleViewGenerator",
    "ct_to_view",
    "fuse_views",
    "init_weights",
    "view_to_ct",
    "xray_to_ct_volume",
]
