"""Weight initialisation of the official X2CT-GAN code (``init_type='normal'``)."""

from __future__ import annotations

from torch import nn

INIT_STD: float = 0.02


def init_weights(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """Initialise ``module`` in place and return it.

    Convolutions (also transposed) and linear layers: weight ~ N(0, std), bias 0. Affine normalisation layers
    (batch/instance/group norm with ``affine=True``): weight ~ N(1, std), bias 0. Other parameters are untouched.
    """
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    for layer in module.modules():
        if isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, norm_types) and getattr(layer, "weight", None) is not None:
            nn.init.normal_(layer.weight, 1.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
