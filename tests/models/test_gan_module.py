"""The X2CT-GAN LightningModule: manual two-optimizer steps, LR policy, non-finite losses, checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from x2ct.data.datamodule import X2CTDataModule
from x2ct.models.gan_module import X2CTGANModule, official_lr_lambda

CUBE = 32


@pytest.fixture(scope="module")
def data_root(tiny_triplets: Path) -> Path:
    return tiny_triplets


@pytest.fixture
def tiny_module(tiny_gan_module: Callable[..., X2CTGANModule]) -> Callable[..., X2CTGANModule]:
    """``(**module_kwargs) -> X2CTGANModule`` of the tiny networks at CUBE."""
    return lambda **kwargs: tiny_gan_module(CUBE, **kwargs)


def tiny_trainer(tmp_path: Path, **kwargs: Any) -> L.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**(options | kwargs))


class StepRecorder(L.Callback):
    """Records, at every optimizer step, which network has gradients and snapshots of both networks."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        self.steps.append(
            {
                "optimizer": 0 if optimizer is trainer.optimizers[0] else 1,
                "d_has_grad": any(p.grad is not None for p in module.discriminator.parameters()),
                "g": [p.detach().clone() for p in module.generator.parameters()],
            }
        )

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.steps.append({"end": True, "g": [p.detach().clone() for p in module.generator.parameters()]})


def test_one_step_updates_both_networks_and_d_step_leaves_g_alone(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    module = tiny_module()
    g_before = [p.detach().clone() for p in module.generator.parameters()]
    d_before = [p.detach().clone() for p in module.discriminator.parameters()]
    recorder = StepRecorder()
    trainer = tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))
    g_step, d_step, end = recorder.steps
    assert g_step["optimizer"] == 0 and d_step["optimizer"] == 1
    assert not g_step["d_has_grad"]  # the generator step leaves the discriminator without gradients
    assert all(torch.equal(a, b) for a, b in zip(d_step["g"], end["g"], strict=True))  # D step: G untouched
    assert any(not torch.equal(a, b) for a, b in zip(g_before, end["g"], strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(d_before, module.discriminator.parameters(), strict=True))
    assert trainer.global_step == 2  # one batch = two optimizer steps


def test_without_adversarial_weight_the_discriminator_is_neither_run_nor_stepped(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    module = tiny_module(loss={"adversarial": 0.0})
    d_before = [p.detach().clone() for p in module.discriminator.parameters()]
    calls: list[int] = []
    module.discriminator.register_forward_hook(lambda *_: calls.append(1))
    recorder = StepRecorder()
    trainer = tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))
    optimizers = [step["optimizer"] for step in recorder.steps if "optimizer" in step]
    assert optimizers == [0, 0]  # two batches, one generator step each: global_step counts G steps only
    assert not calls
    assert all(torch.equal(a, p) for a, p in zip(d_before, module.discriminator.parameters(), strict=True))


def test_official_learning_rate_policy() -> None:
    policy = official_lr_lambda(50, 50)
    assert [policy(i) for i in (0, 47, 48)] == [1.0, 1.0, 1.0]  # epochs 1-49 constant
    assert policy(49) == pytest.approx(1 - 1 / 51)  # epoch 50
    assert policy(98) == pytest.approx(1 - 50 / 51)
    assert policy(99) == 0.0  # epoch 100
    with pytest.raises(ValueError):
        official_lr_lambda(0, 10)


class NaNBatch(L.Callback):
    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, *args: Any) -> None:
        batch["ct"][:] = float("nan")


def test_nonfinite_loss_stops_with_a_clear_error(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    trainer = tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[NaNBatch()])
    with pytest.raises(FloatingPointError, match=r"non-finite generator loss .*reconstruction.*global step 0"):
        trainer.fit(tiny_module(), datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))


def test_nonfinite_loss_can_skip_the_step(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    module = tiny_module(on_nonfinite="skip")
    before = [p.detach().clone() for p in module.generator.parameters()]
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0, callbacks=[NaNBatch()])
    trainer.fit(module, datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))
    assert module.skipped_steps == 4  # G and D on both batches
    assert all(torch.equal(a, p) for a, p in zip(before, module.generator.parameters(), strict=True))


def test_gradient_clipping_bounds_the_norm(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    class NormRecorder(L.Callback):
        """Gradient norms of both networks after their (clipped) steps of each batch."""

        def __init__(self) -> None:
            self.norms: list[float] = []

        def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
            for network in (module.generator, module.discriminator):
                grads = [p.grad.norm() for p in network.parameters() if p.grad is not None]
                self.norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))

    clip = 1e-3
    recorder = NormRecorder()
    trainer = tiny_trainer(tmp_path, max_steps=4, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(tiny_module(gradient_clip_norm=clip), datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))
    assert len(recorder.norms) == 4 and max(recorder.norms) <= clip * 1.01
    assert min(recorder.norms) > clip * 0.5  # the raw gradients are far larger: clipping did act


def test_checkpoint_rebuilds_the_model_and_holds_both_optimizers(
    data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path
) -> None:
    module = tiny_module()
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(module, datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.25))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert len(checkpoint["optimizer_states"]) == 2 and len(checkpoint["lr_schedulers"]) == 2
    assert "generator" in checkpoint["hyper_parameters"]  # the network's config, not the network
    assert not any(isinstance(v, torch.nn.Module) for v in checkpoint["hyper_parameters"].values())
    restored = X2CTGANModule.load_from_checkpoint(path)
    x1, x2 = torch.rand(1, 1, CUBE, CUBE), torch.rand(1, 1, CUBE, CUBE)
    module.eval()
    restored.eval()
    assert torch.equal(module.reconstruct(x1, x2), restored.reconstruct(x1, x2))
    assert {"val/MAE0", "val/PSNR-3D"} <= set(trainer.callback_metrics)


def test_bf16_mixed_precision_step(data_root: Path, tiny_module: Callable[..., X2CTGANModule], tmp_path: Path) -> None:
    module = tiny_module()
    before = [p.detach().clone() for p in module.generator.parameters()]
    trainer = tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(module, datamodule=X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0))
    assert trainer.precision == "bf16-mixed"
    after = list(module.generator.parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after)  # fp32 master weights
    assert any(not torch.equal(a, p) for a, p in zip(before, after, strict=True))


# ----------------------------------------------------------------------------------- point-sampled training
TINY_RAY_IMPLICIT: dict[str, Any] = {
    "_target_": "x2ct.models.RayImplicitGenerator",
    "cube": CUBE,
    "encoder_channels": [4, 8],
    "encoder_convs": 1,
    "hidden_channels": 16,
    "hidden_layers": 2,
}
POINT_LOSS = {"adversarial": 0.0, "projection": 0.0, "reconstruction": 10.0, "bone": 0.1}


def ray_implicit_module(**kwargs: Any) -> X2CTGANModule:
    options = {
        "generator": TINY_RAY_IMPLICIT,
        "discriminator": {"_target_": "x2ct.models.PatchDiscriminator3D", "base_channels": 4},
        "loss": POINT_LOSS,
        "point_sampling": {"points": 512},
        "val_ssim": False,
    }
    return X2CTGANModule(**(options | kwargs))


def test_point_sampled_steps_train_the_whole_volume_without_predicting_it(data_root: Path, tmp_path: Path) -> None:
    """Steps on 512 sampled voxels (of 32^3) lower the error of the whole predicted volume; training never runs the
    whole-volume forward, and the discriminator is never stepped."""
    torch.manual_seed(0)
    module = ray_implicit_module(optimizer_g={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3e-3})
    datamodule = X2CTDataModule(data_root, cube=CUBE, val_fraction=0.0, batch_size=1)
    datamodule.setup("fit")
    case = datamodule.train_set[0]
    batch = {k: v[None] for k, v in case.items() if isinstance(v, torch.Tensor)}

    def error() -> float:
        module.eval()
        value = float((module.reconstruct_batch(batch) - batch["ct"]).square().mean())
        module.train()
        return value

    before = error()
    forward_calls: list[int] = []
    module.generator.register_forward_hook(lambda *_: forward_calls.append(1))
    d_before = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer = tiny_trainer(tmp_path, max_steps=40, limit_val_batches=0, limit_train_batches=1)
    trainer.fit(module, datamodule=datamodule)
    assert not forward_calls
    after = error()
    assert after < 0.5 * before, (before, after)
    assert trainer.global_step == 40  # generator steps only
    assert all(torch.equal(a, p) for a, p in zip(d_before, module.discriminator.parameters(), strict=True))


def test_point_sampled_training_refuses_whole_volume_terms_and_generators_without_points(
    tiny_module: Callable[..., X2CTGANModule],
) -> None:
    with pytest.raises(ValueError, match=r"whole volume.*adversarial.*model.loss"):
        ray_implicit_module(loss=POINT_LOSS | {"adversarial": 0.1})
    with pytest.raises(ValueError, match="BiplanarGenerator"):
        tiny_module(loss=POINT_LOSS, point_sampling={"points": 64})
