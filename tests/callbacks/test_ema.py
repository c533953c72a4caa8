"""The EMA of the generator (callbacks=ema): its arithmetic, its checkpoint key, validation with the EMA weights, and
x2ct-eval / x2ct-predict loading it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from x2ct.callbacks.ema import GENERATOR_EMA_KEY, GeneratorEMA
from x2ct.inference.checkpoint import load_x2ct_checkpoint
from x2ct.train import train

DECAY = 0.5
N_STEPS = 3
N_FEATURES = 2


class TinyGAN(L.LightningModule):
    """A 'generator' (linear + batch norm) trained by SGD; records the generator weight each validation step sees."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(N_FEATURES, N_FEATURES), nn.BatchNorm1d(N_FEATURES))
        self.discriminator = nn.Linear(N_FEATURES, 1)
        self.seen_in_validation: list[torch.Tensor] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.generator(batch[0]).square().mean() + self.discriminator(batch[0]).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.seen_in_validation.append(self.generator[0].weight.detach().clone())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, N_FEATURES)), batch_size=4)


def test_after_k_steps_the_average_is_the_closed_form() -> None:
    """ema_k = d**k p_0 + (1 - d) sum_i d**(k - i) p_i for the parameters; buffers are copied, not averaged."""
    module = TinyGAN()
    ema = GeneratorEMA(decay=DECAY)
    ema.on_fit_start(None, module)  # type: ignore[arg-type]
    weight = module.generator[0].weight
    history = [weight.detach().clone()]
    for step in range(1, N_STEPS + 1):
        with torch.no_grad():
            weight.add_(step)
            module.generator[1].running_mean.fill_(step)
        history.append(weight.detach().clone())
        ema.on_train_batch_end(None, module, None, None, step)  # type: ignore[arg-type]
    expected = DECAY**N_STEPS * history[0] + sum(
        (1 - DECAY) * DECAY ** (N_STEPS - i) * history[i] for i in range(1, N_STEPS + 1)
    )
    checkpoint: dict[str, Any] = {"state_dict": {}}
    ema.on_save_checkpoint(None, module, checkpoint)  # type: ignore[arg-type]
    saved = checkpoint[GENERATOR_EMA_KEY]
    assert saved.keys() == module.generator.state_dict().keys()
    torch.testing.assert_close(saved["0.weight"], expected, rtol=0, atol=1e-6)
    assert torch.equal(saved["1.running_mean"], torch.full((N_FEATURES,), float(N_STEPS)))  # copied
    assert not torch.equal(saved["0.weight"], weight)


def test_checkpoint_round_trip_restores_the_average() -> None:
    module = TinyGAN()
    first = GeneratorEMA(decay=DECAY)
    first.on_fit_start(None, module)  # type: ignore[arg-type]
    with torch.no_grad():
        module.generator[0].weight.add_(1.0)
    first.on_train_batch_end(None, module, None, None, 0)  # type: ignore[arg-type]
    checkpoint: dict[str, Any] = {"state_dict": {}}
    first.on_save_checkpoint(None, module, checkpoint)  # type: ignore[arg-type]
    resumed = GeneratorEMA(decay=DECAY)
    resumed.on_load_checkpoint(None, module, checkpoint)  # type: ignore[arg-type]
    resumed.on_fit_start(None, module)  # type: ignore[arg-type]
    assert resumed.averaged.keys() == first.averaged.keys()
    assert all(torch.equal(resumed.averaged[k], first.averaged[k]) for k in first.averaged)


def test_validation_sees_the_ema_weights_and_training_goes_on_with_the_live_ones(tmp_path: Path) -> None:
    module = TinyGAN()
    ema = GeneratorEMA(decay=DECAY)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[ema],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=loader(), val_dataloaders=loader())
    assert module.seen_in_validation and torch.equal(module.seen_in_validation[-1], ema.averaged["0.weight"])
    assert not torch.equal(module.generator[0].weight, ema.averaged["0.weight"])  # live weights back after it


def test_train_writes_the_ema_and_eval_loads_it(
    tiny_triplets: Path,
    tiny_train_overrides: tuple[str, ...],
    compose_train_config: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """x2ct-train callbacks=ema: last.ckpt holds generator_ema (live weights in state_dict); the checkpoint loader
    that x2ct-eval and x2ct-predict use builds the generator from the EMA and says so."""
    overrides = [
        f"data.root={tiny_triplets}",
        *tiny_train_overrides,
        "callbacks=ema",
        "callbacks.ema.decay=0.9",
        "callbacks.media=null",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    ]
    train(compose_train_config(tmp_path, overrides))
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    live = {k.removeprefix("generator."): v for k, v in checkpoint["state_dict"].items() if k.startswith("generator.")}
    ema = checkpoint[GENERATOR_EMA_KEY]
    assert ema.keys() == live.keys()
    assert any(not torch.equal(ema[k], live[k]) for k in ema)
    with caplog.at_level(logging.INFO, logger="x2ct.inference.checkpoint"):
        loaded = load_x2ct_checkpoint(path)
    assert GENERATOR_EMA_KEY in caplog.text
    assert all(torch.equal(value, ema[name]) for name, value in loaded.model.generator.state_dict().items())
