"""Tiny network configurations shared by the model tests (CPU friendly, same topology as the paper's)."""

from __future__ import annotations

from typing import Any


def tiny_generator_kwargs(cube: int = 32, n_down: int = 3) -> dict[str, Any]:
    """Keyword arguments of a BiplanarGenerator / SingleViewGenerator with ``n_down`` dense blocks and few channels."""
    return {
        "cube": cube,
        "encoder_channels": 8,
        "growth_rate": 4,
        "bottleneck_channels": 8,
        "dense_layers": (1,) * n_down,
        "skip_channels": (4,) * n_down,
        "decoder_channels": (16,) + (8,) * (n_down - 1) + (4,),
        "view_decoder_convs": (1,) * n_down,
        "fused_decoder_convs": (1,) * n_down,
    }


def single_view_kwargs(cube: int = 32, n_down: int = 3) -> dict[str, Any]:
    """Like :func:`tiny_generator_kwargs` without the fused-branch argument."""
    kwargs = tiny_generator_kwargs(cube, n_down)
    del kwargs["fused_decoder_convs"]
    return kwargs
