"""A model folder written by ``x2ct-export``: loaded with no pickle at all (safetensors weights + JSON config).

The folder holds ``model.safetensors`` (the generator's state dict; the EMA weights when the checkpoint had them),
``config.json`` and ``MODEL_CARD.md``. ``config.json`` (``format`` ``x2ct-exported-model``, ``format_version`` 1):

* ``generator``: the generator's Hydra config, rebuilt only through the allow-list of
  :mod:`x2ct.models.allowed_targets`;
* ``weights``: ``file``, ``sha256`` of that file, ``source`` (``generator_ema`` or ``state_dict``), ``ema``;
* ``data``: ``cube`` (output (cube,)^3, axes D, H, W), ``xray_size`` (input X-rays S x S), ``ct_window_hu``
  ([low, high]: the model's [0, 1] is ``HU = x * (high - low) + low``), ``lateral_angle`` (degrees),
  ``train_lateral_angles`` ([low, high] or null), ``spacing_mm`` (D, H, W on the model grid, or null),
  ``xray_mode`` (``aligned`` / ``paper`` / null);
* ``training_geometry``: null or ``ct_shape`` and ``attributes`` (the DRR geometry one training triplet records:
  ``drr.*``, ``spacing_mm``, ``isocenter_mm``, ``xray_mode``), the fallback geometry of a geometry-aware model;
* ``datamodule``: the training data module's constructor arguments (what x2ct-eval rebuilds it from);
* ``source``, ``evaluation``: provenance (checkpoint name, epoch, step) and the run's metrics, when known.

:func:`load_x2ct_checkpoint` (:mod:`x2ct.inference.checkpoint`) dispatches a folder here, so x2ct-predict and
x2ct-eval take either a checkpoint or such a folder as ``ckpt_path``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from x2ct.data.normalization import CTWindow
from x2ct.inference.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    DataSettings,
    LoadedCheckpoint,
    TrainingDataInfo,
    resolve_device,
)
from x2ct.inference.prediction_geometry import TrainingGeometry
from x2ct.models.allowed_targets import GENERATOR, DisallowedTargetError, build_from_config
from x2ct.models.gan_module import X2CTGANModule

EXPORT_FORMAT = "x2ct-exported-model"
FORMAT_VERSION = 1
WEIGHTS_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
MODEL_CARD_FILENAME = "MODEL_CARD.md"
STATE_DICT_SOURCE = "state_dict"
REQUIRED_CONFIG_KEYS: tuple[str, ...] = ("format", "format_version", "generator", "weights", "data")
REQUIRED_DATA_KEYS: tuple[str, ...] = ("cube", "xray_size", "ct_window_hu", "lateral_angle")
HASH_CHUNK_BYTES = 1 << 20


class ExportedModelError(CheckpointError):
    """An exported model folder that cannot be used; the message names the file and what is wrong."""


class NoDiscriminator(nn.Module):
    """Stands in for the discriminator of an exported model, which holds the generator only (inference)."""

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise RuntimeError("an exported model holds only the generator: it cannot be trained or discriminate")


def is_exported_model(path: str | Path) -> bool:
    """True when ``path`` is a folder (an x2ct-export folder is the only folder ``ckpt_path`` accepts)."""
    return Path(path).is_dir()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_export_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of an exported model folder, checked for its format and required entries."""
    config_path = Path(folder) / CONFIG_FILENAME
    if not config_path.is_file():
        raise ExportedModelError(
            f"{folder} is a folder without {CONFIG_FILENAME}: pass a checkpoint file or a folder written by x2ct-export"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportedModelError(f"{config_path} cannot be read as JSON: {error}") from error
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise ExportedModelError(f"{config_path} is not an x2ct-export config (format must be {EXPORT_FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ExportedModelError(
            f"{config_path} has format_version {config.get('format_version')!r}; this x2ct reads {FORMAT_VERSION}"
        )
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in config]
    missing += [f"data.{key}" for key in REQUIRED_DATA_KEYS if key not in (config.get("data") or {})]
    if missing:
        raise ExportedModelError(f"{config_path} lacks {', '.join(missing)}")
    return config


def _read_weights(folder: Path, config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    weights = config["weights"]
    path = folder / str(weights.get("file", WEIGHTS_FILENAME))
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path} does not exist: the exported model's weights are missing")
    expected = weights.get("sha256")
    if expected is not None and file_sha256(path) != expected:
        raise ExportedModelError(
            f"{path} does not match the sha256 recorded in {CONFIG_FILENAME} (changed or truncated)"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ExportedModelError(f"{path} cannot be read as safetensors: {error}") from error


def _data_settings(config: Mapping[str, Any], where: Path) -> DataSettings:
    data = config["data"]
    try:
        return DataSettings(
            cube=int(data["cube"]),
            xray_size=int(data["xray_size"]),
            ct_window=CTWindow.from_pair(data["ct_window_hu"]),
            lateral_angle=float(data["lateral_angle"]),
        )
    except (TypeError, ValueError) as error:
        raise ExportedModelError(f"{where}: unusable data settings {data}: {error}") from error


def _training_info(config: Mapping[str, Any], where: Path) -> TrainingDataInfo:
    data = config["data"]
    spacing = data.get("spacing_mm")
    spacing_mm = tuple(float(s) for s in spacing) if spacing is not None else None
    return TrainingDataInfo(spacing_mm=spacing_mm, xray_mode=data.get("xray_mode"), source=where)  # type: ignore[arg-type]


def _training_geometry(config: Mapping[str, Any], where: Path) -> TrainingGeometry:
    """The recorded training geometry (read from config.json, never from a file), or the aligned default."""
    record = config.get("training_geometry")
    if not record:
        return TrainingGeometry(None)
    shape = tuple(int(n) for n in record["ct_shape"])
    return TrainingGeometry(where, _attrs=dict(record["attributes"]), _ct_shape=shape)  # type: ignore[arg-type]


def load_exported_model(folder: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the generator of an x2ct-export folder (eval mode, on ``device``) with its data settings.

    The model is an :class:`X2CTGANModule` whose discriminator is a :class:`NoDiscriminator` (inference only).
    ``LoadedCheckpoint.training`` and ``training_geometry`` come from ``config.json``, so the training triplets
    need not be reachable. Raises ExportedModelError naming the file (a missing or foreign config, a generator
    config off the allow-list, weights that do not match), CheckpointNotFoundError for missing weights.
    """
    path = Path(folder)
    target = resolve_device(device)
    config = read_export_config(path)
    config_path = path / CONFIG_FILENAME
    try:
        generator = build_from_config(config["generator"], GENERATOR, "generator", source=config_path)
    except DisallowedTargetError as error:
        raise ExportedModelError(str(error)) from error
    except Exception as error:  # wrong arguments for the class (TypeError, ValueError)
        raise ExportedModelError(
            f"{config_path}: the generator cannot be built: {type(error).__name__}: {error}"
        ) from error
    weights = _read_weights(path, config)
    try:
        generator.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise ExportedModelError(
            f"{path / WEIGHTS_FILENAME}: the weights do not fit the generator of {CONFIG_FILENAME}: "
            f"{str(error).splitlines()[0]}"
        ) from error
    model = X2CTGANModule(generator=generator, discriminator=NoDiscriminator(), init_std=None, val_ssim=False)
    model.eval().to(target)
    settings = _data_settings(config, config_path)
    generator_cube = getattr(generator, "cube", None)
    if generator_cube is not None and int(generator_cube) != settings.cube:
        raise ExportedModelError(
            f"{config_path}: data cube {settings.cube} differs from the generator's {generator_cube}"
        )
    return LoadedCheckpoint(
        model=model,
        data=settings,
        path=path,
        device=target,
        datamodule_params=dict(config.get("datamodule") or {}),
        training=_training_info(config, config_path),
        training_geometry=_training_geometry(config, config_path),
    )
