"""Every config composes: each entry point's primary config, every option of every config group, every experiment
and search; each training config builds its data module and model at a tiny size and runs one batch through it.

Files are found by globbing ``conf/``, so a new experiment, search or group option is covered without editing this
module (a new generator needs its tiny widths in ``tests/support/networks.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from x2ct.config_dir import CONFIG_DIR
from x2ct.evaluation import evaluation_settings
from x2ct.models.gan_module import X2CTGANModule
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig
from x2ct.train import instantiate_group

CONF = Path(CONFIG_DIR)
PRIMARY = ("train", "eval", "prepare", "predict", "export")
# Overrides that the command line must give (the configs mark them ???).
REQUIRED = {
    "train": [],
    "eval": ["ckpt_path=model.ckpt"],
    "prepare": [],
    "predict": ["ckpt_path=model.ckpt", "ap=ap.png", "lateral=lateral.png", "out=ct.nii.gz"],
    "export": ["ckpt_path=model.ckpt", "out=shared_model"],
}
PREPARE_GROUPS = ("source", "volume", "drr", "xray")
OPTIONAL_PLUGINS = {  # config group option -> the Hydra plugin it needs (the `slurm` / `optuna` extras)
    ("hydra/launcher", "local"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "slurm"): "hydra_plugins.hydra_submitit_launcher",
    ("hparams_search", "optuna"): "hydra_plugins.hydra_optuna_sweeper",
}


def _groups() -> list[tuple[str, str]]:
    """(group, option) for every option file under conf/<group>/ (nested groups such as model/generator too)."""
    pairs = []
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.parent.relative_to(CONF).as_posix()
        if group != ".":
            pairs.append((group, path.stem))
    return pairs


def _skip_without_plugin(group: str, option: str) -> None:
    plugin = OPTIONAL_PLUGINS.get((group, option))
    if plugin is not None:
        pytest.importorskip(plugin)


def _resolved(
    compose_config: Callable[..., DictConfig], name: str, overrides: list[str], output_dir: Path
) -> DictConfig:
    """``conf/<name>.yaml`` composed with its Hydra node as a run would see it (output folder ``output_dir``);
    every interpolation outside the ``hydra`` node, and its run and sweep folders, resolved."""
    cfg = compose_config(name, [*REQUIRED[name], *overrides], hydra_node=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    for key in cfg:
        if key == "hydra":
            continue
        value = cfg[key]  # resolves a scalar's interpolation
        if OmegaConf.is_config(value):
            OmegaConf.to_container(value, resolve=True)
    assert cfg.hydra.run.dir and cfg.hydra.sweep.dir
    return cfg


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_configs_compose_and_resolve(
    compose_config: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    cfg = _resolved(compose_config, name, [], tmp_path)
    if name == "eval":
        assert evaluation_settings(cfg).split == "test"
    if name == "predict":
        PaperPreprocessConfig(**OmegaConf.to_container(cfg.paper_preprocess), output_size=32)  # type: ignore[arg-type]
    if name == "prepare":
        for key in ("drr", "volume", "source"):
            assert instantiate(cfg[key], _convert_="all") is not None


@pytest.mark.parametrize(("group", "option"), _groups(), ids=lambda value: str(value))
def test_every_group_option_composes(
    compose_config: Callable[..., DictConfig], group: str, option: str, tmp_path: Path
) -> None:
    """Each option of each group composes into its entry point (the prepare groups into x2ct-prepare, the
    others into x2ct-train) and resolves."""
    _skip_without_plugin(group, option)
    primary = "prepare" if group.split("/")[0] in PREPARE_GROUPS else "train"
    cfg = _resolved(compose_config, primary, [f"{group}={option}"], tmp_path)
    assert cfg.hydra.runtime.choices[group] == option


def _training_configs() -> list[list[str]]:
    """The default training config, each experiment, each search, each model and each generator option."""
    configs: list[list[str]] = [[]]
    for group in ("experiment", "hparams_search", "model", "model/generator"):
        configs += [[f"{group}={path.stem}"] for path in sorted((CONF / group).glob("*.yaml"))]
    return configs


@pytest.mark.parametrize("overrides", _training_configs(), ids=lambda o: o[0] if o else "train")
def test_training_configs_build_data_and_model_at_a_tiny_size(
    compose_train_config: Callable[..., DictConfig],
    tiny_train_overrides_for: Callable[..., tuple[str, ...]],
    tiny_triplets: Path,
    overrides: list[str],
    tmp_path: Path,
) -> None:
    """The data module of the config reads the tiny triplets; its model (generator, discriminator, losses) is
    built with tiny widths and reconstructs a batch; its callbacks are built."""
    for override in overrides:
        _skip_without_plugin(*override.split("=", 1))
    chosen = compose_train_config(tmp_path, overrides).hydra.runtime.choices["model/generator"]
    tiny = [f"data.root={tiny_triplets}", *tiny_train_overrides_for(generator=chosen)]
    cfg = compose_train_config(tmp_path, [*overrides, *tiny])

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    model = instantiate(cfg.model)
    assert isinstance(model, X2CTGANModule)
    with torch.no_grad():
        fake = model.eval().reconstruct_batch(batch)
    assert fake.shape == batch["ct"].shape
    optimizers, _ = model.configure_optimizers()  # built through the allow-list, like the networks
    assert len(optimizers) == 2
    assert instantiate_group(cfg.get("callbacks"))
    for key in ("optimized_metric", "tags", "group"):
        assert OmegaConf.select(cfg, key) is not None, key


def test_search_spaces_name_existing_keys(compose_train_config: Callable[..., DictConfig], tmp_path: Path) -> None:
    """Every parameter a search sweeps is a key of the training config (a typo would add a new, unused key)."""
    for path in sorted((CONF / "hparams_search").glob("*.yaml")):
        _skip_without_plugin("hparams_search", path.stem)
        cfg = compose_train_config(tmp_path, [f"hparams_search={path.stem}"])
        params: dict[str, Any] = OmegaConf.to_container(cfg.hydra.sweeper.params)  # type: ignore[assignment]
        assert params, path
        missing = [key for key in params if OmegaConf.select(cfg, key, default="<missing>") == "<missing>"]
        assert missing == [], f"{path.name}: {missing}"
