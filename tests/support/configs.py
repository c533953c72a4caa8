"""Composing the entry points' Hydra configs as their command lines would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from x2ct.config_dir import CONFIG_DIR

# Small but complete preparation settings: a 32^3 cube at 4 mm covers 128 mm like the real 128^3 at 1 mm.
TINY_PREPARE_OVERRIDES: tuple[str, ...] = (
    "volume.cube=32",
    "volume.spacing_mm=[4.0,4.0,4.0]",
    "drr.n_samples=64",
    "workers=1",
    "n_previews=1",
)


def compose_config(name: str, overrides: Sequence[str] = (), hydra_node: bool = False) -> DictConfig:
    """``conf/<name>.yaml`` with Hydra overrides (and Hydra's own node when ``hydra_node``)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra_node)


def compose_train_config(output_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The ``train`` config as ``x2ct-train`` sees it, writing its outputs to ``output_dir`` (sets the global
    HydraConfig, which callbacks and loggers read)."""
    cfg = compose_config("train", overrides, hydra_node=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    return cfg
