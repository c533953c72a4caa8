"""Each default lives in one place: every value a YAML config restates equals the default of the code it
configures (dataclass field, constructor or function argument), and the configs list every knob.

A YAML value that differs from the code's default on purpose belongs in an experiment or a named variant
(``drr/slicer``, ``volume/paper``, ``model/ray_lifting``), not in the default config.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from x2ct.config_dir import CONFIG_DIR
from x2ct.evaluation import EvaluationSettings
from x2ct.export.mesh import bone_surface, write_binary_stl
from x2ct.inference.predictor import Predictor
from x2ct.inference.preview import preview_image
from x2ct.inference.radiograph_geometry import GeometryOptions
from x2ct.io.nifti import save_volume_nifti
from x2ct.models.gan_module import DEFAULT_ADAM, X2CTGANModule
from x2ct.models.losses import LossWeights
from x2ct.models.point_sampling import PointSampling
from x2ct.predict import REQUIRED_KEYS
from x2ct.preparation.pipeline import PrepareSettings
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig

HYDRA_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "defaults"})
CONF = Path(CONFIG_DIR)


def plain(value: Any) -> Any:
    """Configs, tuples and paths as plain comparable values (dicts, lists, strings)."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def code_defaults(target: Callable[..., Any]) -> dict[str, Any]:
    """The keyword arguments of a class (its constructor) or function, with their defaults
    (``inspect.Parameter.empty`` for required ones)."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    parameters = inspect.signature(target).parameters
    return {name: p.default for name, p in parameters.items() if name != "self" and p.kind not in variadic}


def mismatches(
    node: DictConfig,
    defaults: Mapping[str, Any],
    *,
    every_knob: bool = True,
    not_in_yaml: Iterable[str] = (),
) -> list[str]:
    """What keeps ``node`` (a composed config node) from restating ``defaults``: unknown keys, values that differ
    from the default, and (``every_knob``) arguments the YAML does not list."""
    problems = []
    keys = set(node) - HYDRA_KEYS
    problems += [f"{key}: not an argument of the code" for key in sorted(keys - set(defaults))]
    if every_knob:
        missing = set(defaults) - keys - set(not_in_yaml)
        problems += [f"{key}: argument missing from the YAML" for key in sorted(missing)]
    for key in sorted(keys & set(defaults)):
        default = defaults[key]
        if default is inspect.Parameter.empty or OmegaConf.is_missing(node, key):
            continue
        if plain(node[key]) != plain(default):
            problems.append(f"{key}: YAML {plain(node[key])!r} != code default {plain(default)!r}")
    return problems


@pytest.fixture(scope="module")
def prepare_cfg(compose_config: Callable[..., DictConfig]) -> DictConfig:
    return compose_config("prepare", ["drr=physical", "volume=default", "xray=paper"])


@pytest.fixture(scope="module")
def train_cfg(compose_config: Callable[..., DictConfig]) -> DictConfig:
    return compose_config("train")


def _option_names(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


# ------------------------------------------------------------------------------------------- prepare side
def test_drr_physical_restates_drr_config(prepare_cfg: DictConfig) -> None:
    node = prepare_cfg.drr
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


def test_drr_slicer_changes_only_the_mode(compose_config: Callable[..., DictConfig], prepare_cfg: DictConfig) -> None:
    slicer = plain(compose_config("prepare", ["drr=slicer"]).drr)
    physical = plain(prepare_cfg.drr)
    assert {key for key in physical if physical[key] != slicer[key]} == {"mode"}


def test_volume_default_restates_volume_fit_config(prepare_cfg: DictConfig) -> None:
    node = prepare_cfg.volume
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


def test_xray_paper_restates_paper_preprocess_config(prepare_cfg: DictConfig) -> None:
    node = prepare_cfg.xray.preprocess
    assert get_class(node._target_) is PaperPreprocessConfig
    assert mismatches(node, code_defaults(PaperPreprocessConfig)) == []


@pytest.mark.parametrize("source", _option_names("source"))
def test_source_configs_restate_their_defaults(compose_config: Callable[..., DictConfig], source: str) -> None:
    """Sources list their common knobs only (folder layouts keep their code defaults); the phantom shape
    parameters are not restated at all."""
    node = compose_config("prepare", [f"source={source}"]).source
    defaults = code_defaults(get_class(node._target_))
    if "phantom" in node:  # a nested PhantomConfig node; the code's None means PhantomConfig()
        defaults["phantom"] = inspect.Parameter.empty
        phantom = node.phantom
        assert mismatches(phantom, code_defaults(get_class(phantom._target_)), every_knob=False) == []
    assert mismatches(node, defaults, every_knob=False) == []


PREPARE_SETTINGS_KEYS = {  # prepare.yaml key path -> PrepareSettings field
    "lateral_angles": "lateral_angles",
    "seed": "seed",
    "workers": "workers",
    "split.test_fraction": "test_fraction",
    "split.use_dataset_split": "use_dataset_split",
    "allow_failures": "allow_failures",
    "overwrite": "overwrite",
    "save_nifti": "save_nifti",
    "n_previews": "n_previews",
}


def test_prepare_yaml_restates_prepare_settings(prepare_cfg: DictConfig) -> None:
    defaults = code_defaults(PrepareSettings)
    assert set(PREPARE_SETTINGS_KEYS.values()) == set(defaults) - {"out_dir"}  # every field is mapped
    for path, field in PREPARE_SETTINGS_KEYS.items():
        assert plain(OmegaConf.select(prepare_cfg, path)) == plain(defaults[field]), path


# --------------------------------------------------------------------------------------------- train side
def test_data_module_config_restates_its_constructor(train_cfg: DictConfig) -> None:
    node = train_cfg.data
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


@pytest.mark.parametrize("name", _option_names("model/generator"))
def test_generator_configs_restate_their_constructors(compose_config: Callable[..., DictConfig], name: str) -> None:
    """Each generator option file is that generator's defaults (``cube`` follows ``data.cube``, 128)."""
    node = compose_config("train", [f"model/generator={name}"]).model.generator
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


@pytest.mark.parametrize("name", _option_names("model/discriminator"))
def test_discriminator_configs_restate_their_constructors(compose_config: Callable[..., DictConfig], name: str) -> None:
    node = compose_config("train", [f"model/discriminator={name}"]).model.discriminator
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


def test_gan_module_config_restates_its_defaults(train_cfg: DictConfig) -> None:
    """``x2ct_gan.yaml`` (the default model): the optimizers are the module's default Adam (with torch's own
    weight decay), the loss its LossWeights defaults, the point sampling its PointSampling defaults (off)."""
    node = train_cfg.model
    assert get_class(node._target_) is X2CTGANModule
    defaults = code_defaults(X2CTGANModule)
    adam = {**DEFAULT_ADAM, "weight_decay": code_defaults(torch.optim.Adam)["weight_decay"]}
    defaults |= {
        "optimizer_g": adam,
        "optimizer_d": adam,
        "loss": asdict(LossWeights()),
        "point_sampling": asdict(PointSampling()),
    }
    assert mismatches(node, defaults) == []


def test_media_callback_config_restates_its_constructor(train_cfg: DictConfig) -> None:
    node = train_cfg.callbacks.media
    assert mismatches(node, code_defaults(get_class(node._target_))) == []


# ------------------------------------------------------------------------------------------- evaluation
def test_evaluation_group_restates_evaluation_settings(compose_config: Callable[..., DictConfig]) -> None:
    group = OmegaConf.load(CONF / "evaluation" / "default.yaml")
    assert mismatches(group, code_defaults(EvaluationSettings)) == []


def test_both_entry_points_read_the_evaluation_group(
    compose_config: Callable[..., DictConfig], train_cfg: DictConfig
) -> None:
    """x2ct-eval holds the group's keys at the top level, x2ct-train under ``evaluation`` (plus ``enabled``;
    its bootstrap seed is the run's seed)."""
    group = plain(OmegaConf.load(CONF / "evaluation" / "default.yaml"))
    eval_cfg = compose_config("eval", ["ckpt_path=model.ckpt"])
    assert {key: plain(eval_cfg[key]) for key in group} == group
    train_evaluation = plain(train_cfg.evaluation)
    assert train_evaluation.pop("enabled") is False
    assert train_evaluation == group | {"seed": train_cfg.seed}


# --------------------------------------------------------------------------------------------- predict side
PREDICT_OUTPUT_KEYS = ("mesh", "preview")  # optional outputs: null = not written
PREDICT_KEYS: dict[str, tuple[Callable[..., Any], str]] = {  # predict.yaml key -> (code, argument)
    "preprocess": (Predictor.predict_files, "preprocess"),
    "invert": (Predictor.predict_files, "invert"),
    "device": (Predictor.from_checkpoint, "device"),
    "spacing_mm": (Predictor.from_checkpoint, "spacing_mm"),
    "use_training_spacing": (Predictor.from_checkpoint, "use_training_spacing"),
    "dtype": (save_volume_nifti, "ct_dtype"),
    "bone_threshold_hu": (bone_surface, "threshold_hu"),
    "mesh_step_size": (bone_surface, "step_size"),
    "mesh_space": (write_binary_stl, "coordinate_system"),
    "preview_hu_window": (preview_image, "hu_window"),
}


def test_predict_yaml_restates_the_defaults_of_the_code_it_drives(compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config("predict")
    known = {*REQUIRED_KEYS, *PREDICT_OUTPUT_KEYS, *PREDICT_KEYS, "paper_preprocess", "geometry"}
    assert set(cfg) - {"hydra"} == known  # a new knob needs its default checked here
    assert all(OmegaConf.is_missing(cfg, key) for key in REQUIRED_KEYS)
    assert all(cfg[key] is None for key in PREDICT_OUTPUT_KEYS)
    for key, (code, argument) in PREDICT_KEYS.items():
        assert plain(cfg[key]) == plain(code_defaults(code)[argument]), key
    # the output size of the paper preprocessing is always the model's input size
    assert mismatches(cfg.paper_preprocess, code_defaults(PaperPreprocessConfig), not_in_yaml={"output_size"}) == []
    assert mismatches(cfg.geometry, code_defaults(GeometryOptions)) == []
