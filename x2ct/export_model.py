"""``x2ct-export``: a checkpoint -> a model folder to share, loadable without pickle.

    x2ct-export ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt out=models/spine_x2ct

Writes ``out/model.safetensors`` (the generator's weights; the EMA weights when the checkpoint holds them),
``out/config.json`` (generator config, data settings, training geometry and angles) and ``out/MODEL_CARD.md``
(:mod:`x2ct.export.shared_model`). ``x2ct-predict`` and ``x2ct-eval`` take the folder as ``ckpt_path``. The entry
point is called ``export_model`` so that it does not collide with the :mod:`x2ct.export` package.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from x2ct.cli import report_user_errors, run_console_script
from x2ct.config_dir import CONFIG_DIR
from x2ct.export.shared_model import ExportResult, export_checkpoint


def export(cfg: DictConfig) -> ExportResult:
    """Run the export described by a composed ``export`` config."""
    data_root = cfg.get("data_root")
    return export_checkpoint(str(cfg.ckpt_path), str(cfg.out), None if data_root is None else str(data_root))


def format_summary(result: ExportResult) -> str:
    """Two lines for the console: the folder and what the weights are."""
    data = result.config["data"]
    return (
        f"exported {result.folder}: model.safetensors ({result.n_parameters} generator parameters, from "
        f"{result.weights_source}), config.json, MODEL_CARD.md\n"
        f"cube {data['cube']}, X-rays {data['xray_size']} px, lateral {data['lateral_angle']:g} degrees, "
        f"metrics {'from ' + str(result.eval_results.folder) if result.eval_results else 'not found'}"
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@report_user_errors("x2ct-export")
def _main(cfg: DictConfig) -> None:
    print(format_summary(export(cfg)))


def main() -> None:
    """Console-script entry point."""
    run_console_script("x2ct-export", _main)


if __name__ == "__main__":
    main()
