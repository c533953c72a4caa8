"""``x2ct-train``: train X2CT-GAN on HDF5 triplets (Lightning + Hydra).

x2ct-train experiment=demo
x2ct-train experiment=paper data.root=data/colonog trainer=gpu logger=wandb
x2ct-train experiment=paper data.root=data/colonog trainer=ddp trainer.devices=4 data.batch_size=1
x2ct-train ... ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt      # resume
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from x2ct.cli import report_user_errors, run_console_script
from x2ct.config_dir import CONFIG_DIR
from x2ct.inference.checkpoint import read_checkpoint
from x2ct.utils.precision import FP32, resolve_precision

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [instantiate(spec, _convert_="all") for spec in group.values() if spec and "_target_" in spec]


def finish_wandb() -> None:
    """Close the W&B run of this job, so that the next job of a multirun starts its own."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The job's config as plain containers, interpolations resolved, without Hydra's own node."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by the monitored metric, else the last one, else None."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    return callback.best_model_path or callback.last_model_path or None


def evaluate_after_training(cfg: DictConfig, ckpt_path: str | None) -> dict[str, float]:
    """x2ct-eval's metrics of ``ckpt_path`` on the job's own data, written to ``<output_dir>/eval``."""
    from x2ct.evaluation import evaluate_checkpoint, evaluation_settings

    if not ckpt_path:
        raise RuntimeError("evaluation.enabled=true needs a checkpoint: keep the model_checkpoint callback")
    data = {"root": cfg.data.root, "lateral_angle": cfg.data.lateral_angle}
    out_dir = Path(cfg.paths.output_dir) / "eval"
    result = evaluate_checkpoint(ckpt_path, data, out_dir, evaluation_settings(cfg.evaluation))
    return {f"eval/{k}": float(v) for k, v in result.metrics.items()}


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the model of ``cfg``; returns the final callback metrics as floats."""
    evaluation = cfg.get("evaluation")
    if evaluation and evaluation.enabled:  # its settings are checked now, not after hours of training
        from x2ct.evaluation import evaluation_settings

        evaluation_settings(evaluation)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    precision, why = resolve_precision(cfg.trainer.get("precision", FP32), cfg.trainer.get("accelerator", "auto"))
    if why:
        log.info(why)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision)
    config = resolved_config(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams({"config": config})
    try:
        if cfg.train:
            resume = cfg.get("ckpt_path")
            if resume:  # refuses pickled code and configs off the allow-list before Lightning reads the file
                read_checkpoint(resume)
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = best_checkpoint(trainer)
        if cfg.get("test"):
            trainer.test(model, datamodule=datamodule, ckpt_path=best)
            metrics |= {k: float(v) for k, v in trainer.callback_metrics.items()}
        evaluation = cfg.get("evaluation")
        if evaluation and evaluation.enabled and trainer.is_global_zero:
            metrics |= evaluate_after_training(cfg, best)
    finally:
        finish_wandb()
    if trainer.is_global_zero:
        checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        log.info("output: %s; checkpoints: %s", cfg.paths.output_dir, checkpoints)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@report_user_errors("x2ct-train")
def _main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if name and name in metrics:
        return metrics[name]
    return None


def main() -> None:
    """Console-script entry point."""
    run_console_script("x2ct-train", _main)


if __name__ == "__main__":
    main()
