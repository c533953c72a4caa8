"""``x2ct-prepare``: CT scans with vertebra masks (or built-in phantoms) -> HDF5 triplets for training.

x2ct-prepare source=phantom source.n_cases=16 out_dir=data/phantoms
x2ct-prepare source=ctspine1k source.root=/data/CTSpine1K source.subset=COLONOG out_dir=data/colonog
x2ct-prepare source=pairs source.root=/data/mine source.ct_pattern='*_ct.nii.gz' source.mask_pattern='*_seg.nii.gz'
"""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from x2ct.config_dir import CONFIG_DIR
from x2ct.preparation.pipeline import PrepareSettings, XraySettings, format_summary, run_prepare

log = logging.getLogger(__name__)


def prepare_from_config(cfg: DictConfig, progress: bool = True) -> int:
    """Run the pipeline described by a composed ``prepare`` config; returns the process exit status."""
    source = instantiate(cfg.source, _convert_="all")
    fit = instantiate(cfg.volume, _convert_="all")
    drr = instantiate(cfg.drr, _convert_="all")
    preprocess = instantiate(cfg.xray.preprocess, _convert_="all") if "preprocess" in cfg.xray else None
    xray = XraySettings(mode=cfg.xray.mode, size=cfg.xray.size, preprocess=preprocess)
    settings = PrepareSettings(
        out_dir=cfg.out_dir,
        lateral_angles=list(cfg.lateral_angles),
        seed=cfg.seed,
        workers=cfg.workers,
        test_fraction=cfg.split.test_fraction,
        use_dataset_split=cfg.split.use_dataset_split,
        allow_failures=cfg.allow_failures,
        overwrite=cfg.overwrite,
        save_nifti=cfg.save_nifti,
        n_previews=cfg.n_previews,
    )
    summary = run_prepare(source, fit, drr, xray, settings, progress=progress)
    print(format_summary(summary))
    if summary.failed and not settings.allow_failures:
        print(f"{len(summary.failed)} case(s) failed; see manifest.csv (allow_failures=true accepts this).")
        return 1
    return 0


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def _main(cfg: DictConfig) -> None:
    status = prepare_from_config(cfg)
    if status:
        raise SystemExit(status)


def main() -> None:
    """Console-script entry point."""
    _main()


if __name__ == "__main__":
    main()
