"""Inference: load an x2ct-train checkpoint and reconstruct CT volumes (HU) from X-ray pairs."""

from __future__ import annotations

from x2ct.inference.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    DataSettings,
    LoadedCheckpoint,
    load_x2ct_checkpoint,
    read_checkpoint,
    training_data_info,
)
from x2ct.inference.predictor import Prediction, Predictor, centered_affine

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "DataSettings",
    "LoadedCheckpoint",
    "Prediction",
    "Predictor",
    "centered_affine",
    "load_x2ct_checkpoint",
    "read_checkpoint",
    "training_data_info",
]
