"""A per-rank fingerprint of the model's weights at the end of training, to check that DDP ranks agree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import torch

from x2ct.utils.atomic import atomic_write_text


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (name, dtype, shape and bytes), in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    return digest.hexdigest()


class WeightFingerprint(L.Callback):
    """Writes ``<out_dir>/rank<k>.json`` (rank, global step, weights digest) on every rank when training ends."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "digest": weights_digest(pl_module),
        }
        atomic_write_text(self.out_dir / f"rank{trainer.global_rank}.json", json.dumps(record) + "\n")
