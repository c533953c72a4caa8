"""Random state that survives a resume: each training epoch reseeds python, NumPy and torch from (seed, epoch, rank),
and every checkpoint carries the random states of the moment it was saved.

Resuming from a checkpoint saved at the end of an epoch (``last.ckpt`` of the default checkpoint callback) thus
draws exactly what the uninterrupted run drew (dropout, random view turns, anything using the global generators);
the data order and the per-item draws come from :class:`x2ct.data.epoch_sampler.EpochSampler`. A checkpoint saved
in the middle of an epoch restores the saved states instead, since Lightning then continues the epoch without
calling ``on_train_epoch_start``.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from x2ct.utils.seeding import (
    GLOBAL_STREAM,
    derived_seed,
    global_random_state,
    seed_global_generators,
    set_global_random_state,
)


class EpochRandomState(L.Callback):
    """Reseeds the global generators from ``(seed, epoch, global rank)`` at the start of every training epoch;
    ``state_dict`` holds the global random states (python, numpy, torch, CUDA) when a checkpoint is saved, and
    ``load_state_dict`` restores them when training resumes from one."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed_global_generators(derived_seed(GLOBAL_STREAM, self.seed, trainer.current_epoch, trainer.global_rank))

    def state_dict(self) -> dict[str, Any]:
        return {"random_state": global_random_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "random_state" in state_dict:
            set_global_random_state(state_dict["random_state"])
