"""The one tiny network definition of the tests: the paper's topology with few channels, CPU friendly."""

from __future__ import annotations

from typing import Any

from x2ct.models.gan_module import X2CTGANModule

TINY_CUBE = 32
TINY_DENSE_BLOCKS = 3
TINY_DISCRIMINATOR: dict[str, Any] = {"base_channels": 4}


def tiny_generator_kwargs(cube: int = TINY_CUBE, n_down: int = TINY_DENSE_BLOCKS, fused: bool = True) -> dict[str, Any]:
    """Keyword arguments of a BiplanarGenerator (``fused=True``) or SingleViewGenerator (``fused=False``, no
    fused-branch argument) with ``n_down`` dense blocks and few channels."""
    kwargs: dict[str, Any] = {
        "cube": cube,
        "encoder_channels": 8,
        "growth_rate": 4,
        "bottleneck_channels": 8,
        "dense_layers": (1,) * n_down,
        "skip_channels": (4,) * n_down,
        "decoder_channels": (16,) + (8,) * (n_down - 1) + (4,),
        "view_decoder_convs": (1,) * n_down,
    }
    if fused:
        kwargs["fused_decoder_convs"] = (1,) * n_down
    return kwargs


# Tiny widths of the ray-lifting generator: three levels (a 32^3 cube is a multiple of 2^2).
TINY_RAY_LIFTING: dict[str, Any] = {
    "encoder_channels": (4, 8, 8),
    "lifted_channels": (2, 4, 4),
    "decoder_channels": (4, 8, 8),
    "decoder_convs": (1, 1, 1),
}


# Tiny widths of the ray-implicit generator: a two-level 2D encoder and a narrow MLP.
TINY_RAY_IMPLICIT: dict[str, Any] = {
    "encoder_channels": (4, 8),
    "encoder_convs": 1,
    "hidden_channels": 16,
    "hidden_layers": 2,
}


def tiny_generator_options(generator: str = "biplanar", cube: int = TINY_CUBE) -> dict[str, Any]:
    """Tiny widths (without ``cube``) for an option of the ``model/generator`` config group."""
    if generator == "biplanar":
        options = tiny_generator_kwargs(cube)
    elif generator == "single_view":
        options = tiny_generator_kwargs(cube, fused=False)
    elif generator == "ray_lifting":
        options = dict(TINY_RAY_LIFTING)
    elif generator == "ray_implicit":
        options = dict(TINY_RAY_IMPLICIT)
    else:
        raise KeyError(f"no tiny sizes for model/generator={generator}: add them to tests/support/networks.py")
    options.pop("cube", None)  # the generator configs interpolate data.cube
    return options


def _override_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def tiny_train_overrides(cube: int = TINY_CUBE, generator: str = "biplanar") -> tuple[str, ...]:
    """``x2ct-train`` overrides for tiny networks at ``cube`` (``generator``: the model/generator option in use), a
    25% validation hold-out, no 3D SSIM, quiet trainer."""
    return (
        f"data.cube={cube}",
        "data.val_fraction=0.25",
        *(f"model.generator.{k}={_override_value(v)}" for k, v in tiny_generator_options(generator, cube).items()),
        *(f"model.discriminator.{name}={value}" for name, value in TINY_DISCRIMINATOR.items()),
        "model.val_ssim=false",
        "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false",
    )


def tiny_gan_module(cube: int = TINY_CUBE, **kwargs: Any) -> X2CTGANModule:
    """An X2CT-GAN LightningModule of the tiny networks (no 3D SSIM); ``kwargs`` go to :class:`X2CTGANModule`."""
    generator = {"_target_": "x2ct.models.BiplanarGenerator", **tiny_generator_kwargs(cube)}
    discriminator = {"_target_": "x2ct.models.PatchDiscriminator3D", **TINY_DISCRIMINATOR}
    return X2CTGANModule(generator=generator, discriminator=discriminator, **{"val_ssim": False, **kwargs})
