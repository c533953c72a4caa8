"""``x2ct-train``: the Hydra app end to end on tiny triplets (fast_dev_run, loggers, resume, DDP on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from x2ct.inference.checkpoint import load_x2ct_checkpoint
from x2ct.models import SingleViewGenerator
from x2ct.models.gan_module import official_lr_lambda
from x2ct.train import train

ComposeTrain = Callable[..., Any]
ONE_SHORT_EPOCH = ("trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1")


@pytest.fixture(scope="module")
def data_root(tiny_triplets: Path) -> Path:
    return tiny_triplets


def test_fast_dev_run(
    data_root: Path, tiny_train_overrides: tuple[str, ...], compose_train_config: ComposeTrain, tmp_path: Path
) -> None:
    cfg = compose_train_config(tmp_path, [f"data.root={data_root}", *tiny_train_overrides, "debug=fdr", "test=true"])
    metrics = train(cfg)
    assert {"val/MAE0", "val/PSNR-3D", "test/MAE0", "train/g_total_epoch"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_csv_and_offline_wandb_loggers(
    data_root: Path,
    tiny_train_overrides: tuple[str, ...],
    compose_train_config: ComposeTrain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    overrides = [
        f"data.root={data_root}",
        *tiny_train_overrides,
        "logger=many_loggers",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "tags=[unit]",
        "group=unit-test",
    ]
    try:
        train(compose_train_config(tmp_path, overrides))
    finally:
        wandb.teardown()
    metrics_csv = next((tmp_path / "csv").rglob("metrics.csv")).read_text()
    assert "val/PSNR-3D" in metrics_csv and "train/g_reconstruction_epoch" in metrics_csv
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].rglob("media/images/val/triplanar/*.png"))  # media from the callback reached W&B
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert wandb.run is None  # finished after the job


# model option -> its generator's tiny sizes
MODELS = {"x2ct_gan": "biplanar", "ray_lifting": "ray_lifting", "ray_implicit": "ray_implicit"}
# model option -> (optimizer steps of 2 epochs x 2 batches, epochs each LR scheduler stepped): the ray-implicit model
# trains without the adversarial term, so its discriminator's optimizer and scheduler never step
RESUMED_STEPS = {"x2ct_gan": (8, [2, 2]), "ray_lifting": (8, [2, 2]), "ray_implicit": (4, [2, 0])}


def model_overrides(model: str, tiny_train_overrides_for: Callable[..., tuple[str, ...]]) -> list[str]:
    """The model option and its tiny network sizes."""
    return [f"model={model}", *tiny_train_overrides_for(generator=MODELS[model])]


@pytest.mark.parametrize("model", list(MODELS))
def test_resume_continues_epochs_optimizers_and_schedulers(
    model: str,
    data_root: Path,
    tiny_train_overrides_for: Callable[..., tuple[str, ...]],
    compose_train_config: ComposeTrain,
    tmp_path: Path,
) -> None:
    base = [
        f"data.root={data_root}",
        *model_overrides(model, tiny_train_overrides_for),
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "model.lr_constant_epochs=1",
        "model.lr_decay_epochs=3",
    ]
    first = tmp_path / "first"
    train(compose_train_config(first, [*base, "trainer.max_epochs=1"]))
    last = first / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    train(compose_train_config(second, [*base, "trainer.max_epochs=2", f"ckpt_path={last}"]))
    checkpoint = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    global_step, scheduler_epochs = RESUMED_STEPS[model]
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == global_step  # 2 epochs x 2 batches x (G (+ D))
    assert [s["last_epoch"] for s in checkpoint["lr_schedulers"]] == scheduler_epochs
    assert checkpoint["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(2e-4 * official_lr_lambda(1, 3)(2))
    adam_steps = {int(state["step"]) for opt in checkpoint["optimizer_states"] for state in opt["state"].values()}
    assert adam_steps == {4}  # each optimizer that steps stepped on 4 batches across the two runs


@pytest.mark.full  # about 30 s on 2 CPU cores
@pytest.mark.parametrize("model", list(MODELS))
def test_ddp_on_two_cpu_processes_keeps_ranks_identical(
    model: str, data_root: Path, tiny_train_overrides_for: Callable[..., tuple[str, ...]], tmp_path: Path
) -> None:
    """``trainer=ddp_cpu`` through the console script (a clean subprocess: the ddp launcher re-runs the command)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "MASTER_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK"))
    }
    env |= {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).parent / "x2ct-train"
    args = [
        str(exe),
        f"data.root={data_root}",
        *model_overrides(model, tiny_train_overrides_for),
        "trainer=ddp_cpu",
        "callbacks=fingerprint",
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads((tmp_path / "run" / "fingerprints" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    assert records[0]["global_step"] == records[1]["global_step"] > 0
    assert records[0]["digest"] == records[1]["digest"]


def test_single_view_baseline_config(
    data_root: Path, tiny_train_overrides: tuple[str, ...], compose_train_config: ComposeTrain, tmp_path: Path
) -> None:
    """model/generator=single_view with view=xray2 trains a model that reads the lateral X-ray only."""
    overrides = [o for o in tiny_train_overrides if "fused_decoder_convs" not in o]
    cfg = compose_train_config(
        tmp_path,
        [
            f"data.root={data_root}",
            "model/generator=single_view",
            "model.generator.view=xray2",
            *overrides,
            *ONE_SHORT_EPOCH,
        ],
    )
    metrics = train(cfg)
    assert "val/PSNR-3D" in metrics
    model = load_x2ct_checkpoint(tmp_path / "checkpoints" / "last.ckpt").model
    assert isinstance(model.generator, SingleViewGenerator)
    rng = torch.Generator().manual_seed(0)
    cube = cfg.data.cube
    xray_a, xray_b = (torch.rand(1, 1, cube, cube, generator=rng) for _ in range(2))
    with torch.no_grad():
        reference = model.reconstruct(xray_a, xray_a)
        other_ap = model.reconstruct(xray_b, xray_a)
        other_lateral = model.reconstruct(xray_a, xray_b)
    torch.testing.assert_close(other_ap, reference)  # the AP X-ray (xray1) is ignored
    assert not torch.allclose(other_lateral, reference)  # the lateral one (xray2) is read


def test_evaluation_after_training_uses_the_evaluation_group(
    data_root: Path, tiny_train_overrides: tuple[str, ...], compose_train_config: ComposeTrain, tmp_path: Path
) -> None:
    overrides = [f"data.root={data_root}", *tiny_train_overrides, *ONE_SHORT_EPOCH]
    evaluation = ["evaluation.enabled=true", "evaluation.n_boot=50", "evaluation.ci=0.5", "evaluation.figures=false"]
    metrics = train(compose_train_config(tmp_path, [*overrides, *evaluation]))
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert (summary["n_boot"], summary["ci"], summary["split"]) == (50, 0.5, "test")
    assert not (tmp_path / "eval" / "figures").exists()
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["eval/PSNR-3D"] == pytest.approx(written["PSNR-3D"]) and written["n_cases"] == 2


def test_demo_training_is_reproducible(
    data_root: Path,
    tiny_train_overrides_for: Callable[..., tuple[str, ...]],
    compose_train_config: ComposeTrain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two runs of the demo experiment (the ray-implicit model on random lateral angles, at 32^3) in one process
    configuration end with bit-identical weights:
    the seed fixes initialization, data order and validation hold-out, and the demo asks for deterministic kernels."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # Lightning sets it with deterministic; restored after
    overrides = [
        "experiment=demo",
        f"data.root={data_root}",
        *tiny_train_overrides_for(generator="ray_implicit"),
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    ]
    weights = []
    try:
        for run in ("first", "second"):
            cfg = compose_train_config(tmp_path / run, overrides)
            assert cfg.trainer.deterministic == "warn"
            train(cfg)
            checkpoint = torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
            weights.append(checkpoint["state_dict"])
    finally:
        torch.use_deterministic_algorithms(False)
    assert weights[0].keys() == weights[1].keys()
    different = [name for name in weights[0] if not torch.equal(weights[0][name], weights[1][name])]
    assert not different, different[:5]


def test_ray_implicit_model_trains_evaluates_and_predicts(
    data_root: Path,
    tiny_train_overrides_for: Callable[..., tuple[str, ...]],
    compose_train_config: ComposeTrain,
    synthetic_xray: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """model=ray_implicit: point-sampled training, x2ct-eval's loop on the test split and x2ct-predict's predictor
    (which must hand the generator the views' matrices) all run on the same checkpoint."""
    from x2ct.inference.predictor import Predictor
    from x2ct.models import RayImplicitGenerator

    overrides = [
        f"data.root={data_root}",
        *model_overrides("ray_implicit", tiny_train_overrides_for),
        *ONE_SHORT_EPOCH,
        "evaluation.enabled=true",
        "evaluation.n_boot=20",
        "evaluation.figures=false",
    ]
    metrics = train(compose_train_config(tmp_path, overrides))
    assert "train/g_reconstruction_epoch" in metrics and "train/g_bone_epoch" in metrics
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n_cases"] == 2 and metrics["eval/PSNR-3D"] == pytest.approx(written["PSNR-3D"])
    predictor = Predictor.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert isinstance(predictor.model.generator, RayImplicitGenerator)
    prediction = predictor.predict_images(synthetic_xray(), synthetic_xray(lateral=True), preprocess="aligned")
    images = [torch.from_numpy(x / 255.0).float()[None, None] for x in (prediction.xray1, prediction.xray2)]
    matrices = [torch.from_numpy(m)[None] for m in (prediction.proj_xray1, prediction.proj_xray2)]
    with torch.no_grad():
        unit = predictor.model.reconstruct(*images, *matrices)[0, 0].numpy()
    assert unit.std() > 0
    np.testing.assert_allclose(prediction.volume.hu, unit * 2500.0 - 1024.0, atol=1e-3)
