"""Writing a model folder to share (``x2ct-export``): generator weights as safetensors, config.json, MODEL_CARD.md.

The checkpoint is read safely (:func:`x2ct.inference.checkpoint.read_checkpoint`: ``weights_only``, configs
checked against the allow-list), its generator rebuilt and the weights loaded into it (so a folder is only written
for weights that fit), and the three files are written atomically, ``config.json`` last: it records the SHA-256 of
``model.safetensors``, so a folder left by an interrupted export (new weights, old config) is refused on loading.
The format is described in :mod:`x2ct.inference.exported_model`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from x2ct import __version__
from x2ct.callbacks.ema import GENERATOR_EMA_KEY as EMA_KEY
from x2ct.errors import UserError
from x2ct.export.model_card import EvalResults, find_eval_results, model_card
from x2ct.inference.checkpoint import (
    GENERATOR_PREFIX,
    LIGHTNING_VERSION_KEY,
    CheckpointError,
    DataSettings,
    TrainingDataInfo,
    data_settings,
    read_checkpoint,
    training_data_info,
)
from x2ct.inference.exported_model import (
    CONFIG_FILENAME,
    EXPORT_FORMAT,
    FORMAT_VERSION,
    MODEL_CARD_FILENAME,
    STATE_DICT_SOURCE,
    WEIGHTS_FILENAME,
    file_sha256,
)
from x2ct.io.hdf5 import read_triplet
from x2ct.models.allowed_targets import GENERATOR, build_from_config, check_config
from x2ct.models.gan_module import uses_geometry
from x2ct.utils.atomic import atomic_output, atomic_write_text

log = logging.getLogger(__name__)

# Triplet attributes that describe the DRR geometry and X-ray mode (the fallback geometry of a geometry-aware
# model); the others (source paths, fingerprints) stay private.
GEOMETRY_ATTRIBUTE_PREFIX = "drr."
GEOMETRY_ATTRIBUTES: tuple[str, ...] = ("spacing_mm", "isocenter_mm", "xray_mode")
NORMALIZATION = "x = clip((HU - low) / (high - low), 0, 1); HU = x * (high - low) + low"


class ExportOutputError(UserError, ValueError):
    """An ``out`` folder that cannot be written (a file, not writable)."""


@dataclass(frozen=True)
class ExportResult:
    """The folder written and what it holds."""

    folder: Path
    weights_source: str
    n_parameters: int
    config: dict[str, Any]
    eval_results: EvalResults | None


def generator_weights(checkpoint: Mapping[str, Any], file: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The generator's state dict to share and where it came from: the EMA weights (checkpoint key
    ``generator_ema``) when present, else the ``generator.*`` entries of ``state_dict`` (prefix removed)."""
    ema = checkpoint.get(EMA_KEY)
    if ema is not None:
        if not isinstance(ema, Mapping) or not all(isinstance(v, torch.Tensor) for v in ema.values()):
            raise CheckpointError(f"{file}: {EMA_KEY!r} is not a state dict of tensors")
        return {str(k): v for k, v in ema.items()}, EMA_KEY
    state = checkpoint["state_dict"]
    weights = {k[len(GENERATOR_PREFIX) :]: v for k, v in state.items() if str(k).startswith(GENERATOR_PREFIX)}
    return weights, STATE_DICT_SOURCE


def _check_out_folder(out: Path) -> None:
    """Fail before any work when ``out`` is a file or its nearest existing ancestor is not writable."""
    if out.exists() and not out.is_dir():
        raise ExportOutputError(f"out={out} is a file: give a folder for {WEIGHTS_FILENAME}, {CONFIG_FILENAME}, ...")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ExportOutputError(f"cannot create the export folder {out}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportOutputError(f"cannot create the export folder {out}: {existing} is not writable")


def _json_value(value: Any) -> Any:
    """Plain JSON values (tuples as lists, paths and other objects as strings)."""
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def training_geometry_record(info: TrainingDataInfo | None) -> dict[str, Any] | None:
    """The DRR geometry and X-ray mode one training triplet records (:mod:`x2ct.inference.exported_model`), or
    None when no training triplet is reachable."""
    if info is None:
        return None
    triplet = read_triplet(info.source)
    attrs = {
        key: _json_value(value)
        for key, value in triplet.attrs.items()
        if key.startswith(GEOMETRY_ATTRIBUTE_PREFIX) or key in GEOMETRY_ATTRIBUTES
    }
    return {"ct_shape": list(triplet.ct_hu_plus_1024.shape), "attributes": attrs}


def _data_record(settings: DataSettings, info: TrainingDataInfo | None, params: Mapping[str, Any]) -> dict[str, Any]:
    angles = params.get("train_lateral_angles")
    return {
        "cube": settings.cube,
        "xray_size": settings.xray_size,
        "ct_window_hu": [settings.ct_window.low_hu, settings.ct_window.high_hu],
        "normalization": NORMALIZATION,
        "lateral_angle": settings.lateral_angle,
        "train_lateral_angles": _json_value(angles) if angles is not None else None,
        "spacing_mm": list(info.spacing_mm) if info is not None and info.spacing_mm is not None else None,
        "xray_mode": info.xray_mode if info is not None else None,
        "training_root": settings.data_root,
    }


class TrainingDataNotFoundError(UserError, FileNotFoundError):
    """A geometry-aware model's training triplets (its DRR geometry) cannot be reached for the export."""


def export_checkpoint(ckpt_path: str | Path, out: str | Path, data_root: str | Path | None = None) -> ExportResult:
    """Write ``out``/model.safetensors, config.json and MODEL_CARD.md for the checkpoint ``ckpt_path``.

    ``data_root``: the prepared training folder when it moved (default: the root recorded in the checkpoint).

    Raises CheckpointError (unreadable, unsafe or foreign checkpoint; weights that do not fit the generator),
    ExportOutputError (``out`` cannot be written), TrainingDataNotFoundError (a geometry-aware model whose training
    triplets cannot be read: without their geometry, predictions would silently assume another one).
    """
    file, folder = Path(ckpt_path), Path(out)
    _check_out_folder(folder)
    checkpoint = read_checkpoint(file)
    generator_config = check_config(checkpoint["hyper_parameters"]["generator"], GENERATOR, "generator", file)
    weights, source = generator_weights(checkpoint, file)
    try:
        generator = build_from_config(generator_config, GENERATOR, "generator", file)
        generator.load_state_dict(weights, strict=True)
    except Exception as error:  # wrong arguments (TypeError, ValueError) or mismatched weights (RuntimeError)
        raise CheckpointError(
            f"{file}: the generator cannot be rebuilt from its config and {source} weights: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    cube = getattr(generator, "cube", None)
    settings = data_settings(checkpoint, file, int(cube) if cube is not None else None)
    if data_root is not None:
        settings = replace(settings, data_root=str(data_root))
    info = training_data_info(settings)
    if info is None and uses_geometry(generator):
        raise TrainingDataNotFoundError(
            f"{file}: the training triplets under {settings.data_root} (from {Path.cwd()}) cannot be read, so the "
            "geometry-aware model's DRR geometry and voxel size cannot be recorded; run from the training folder or "
            "pass data_root=<the prepared folder>"
        )
    if info is None:
        log.warning("the training triplets of %s are not reachable: voxel size and DRR geometry not recorded", file)
    params = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    eval_results = find_eval_results(file)
    tensors = {name: value.detach().to("cpu").contiguous().clone() for name, value in generator.state_dict().items()}
    n_parameters = sum(p.numel() for p in generator.parameters())

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILENAME
    with atomic_output(weights_path) as tmp:  # bytes written into the temporary file keep its umask mode
        tmp.write_bytes(save(tensors, metadata={"format": "pt", "producer": f"x2ct {__version__}"}))
    config: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": _json_value(generator_config),
        "weights": {
            "file": WEIGHTS_FILENAME,
            "sha256": file_sha256(weights_path),
            "source": source,
            "ema": source == EMA_KEY,
            "n_tensors": len(tensors),
            "n_parameters": n_parameters,
        },
        "data": _data_record(settings, info, params),
        "training_geometry": training_geometry_record(info),
        "datamodule": _json_value(params),
        "source": {
            "checkpoint": file.name,
            "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step"),
            "lightning_version": checkpoint.get(LIGHTNING_VERSION_KEY),
            "x2ct_version": __version__,
        },
        "evaluation": eval_results.record() if eval_results is not None else None,
    }
    atomic_write_text(folder / MODEL_CARD_FILENAME, model_card(config, eval_results))
    atomic_write_text(folder / CONFIG_FILENAME, json.dumps(config, indent=2) + "\n")
    return ExportResult(folder, source, n_parameters, config, eval_results)
