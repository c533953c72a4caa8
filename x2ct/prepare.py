"""``x2ct-prepare``: CT scans with vertebra masks (or built-in phantoms) -> HDF5 triplets for training.

x2ct-prepare source=phantom source.n_cases=16 out_dir=data/phantoms
x2ct-prepare source=ctspine1k source.root=/data/CTSpine1K source.subset=COLONOG out_dir=data/colonog
x2ct-prepare source=pairs source.root=/data/mine source.ct_pattern='*_ct.nii.gz' source.mask_pattern='*_seg.nii.gz'
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from x2ct.cli import report_user_errors, run_console_script
from x2ct.config_dir import CONFIG_DIR
from x2ct.errors import InvalidOptionError, UserError
from x2ct.preparation.pipeline import MANIFEST_NAME, PrepareSettings, XraySettings, format_summary, run_prepare

log = logging.getLogger(__name__)

COMMAND = "x2ct-prepare"
EXIT_CASES_FAILED = 1  # some cases failed (listed in the manifest); 2 is a user error that stopped the run


def build_option_group(node: DictConfig, group: str) -> Any:
    """Instantiate the config group ``group`` (``source``, ``volume``, ``drr``, ``xray.preprocess``); a value its
    class rejects (ValueError, or TypeError for an unknown key) becomes InvalidOptionError naming the group."""
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, UserError) or not isinstance(cause, ValueError | TypeError):
            raise
        message = str(cause) if str(cause).startswith(f"{group}.") else f"{group}: {cause}"
        raise InvalidOptionError(message) from error


def failure_message(failed: list[tuple[str, str]], n_cases: int, manifest: str) -> str:
    """The final one-line error of a run where some cases failed: how many, the first one and its reason."""
    case_id, reason = failed[0]
    reason_line = reason.strip().splitlines()[0] if reason.strip() else "no reason recorded"
    return (
        f"{len(failed)} of {n_cases} case(s) failed (first: {case_id}: {reason_line}); see {manifest} "
        "(allow_failures=true accepts this)"
    )


def prepare_from_config(cfg: DictConfig, progress: bool = True) -> int:
    """Run the pipeline described by a composed ``prepare`` config; returns the process exit status (0, or
    ``EXIT_CASES_FAILED`` when a case failed and ``allow_failures`` is false; the reason goes to stderr)."""
    source = build_option_group(cfg.source, "source")
    fit = build_option_group(cfg.volume, "volume")
    drr = build_option_group(cfg.drr, "drr")
    preprocess = build_option_group(cfg.xray.preprocess, "xray.preprocess") if "preprocess" in cfg.xray else None
    xray = XraySettings(mode=cfg.xray.mode, size=cfg.xray.size, preprocess=preprocess)
    settings = PrepareSettings(
        out_dir=cfg.out_dir,
        lateral_angles=OmegaConf.to_object(cfg.lateral_angles)
        if OmegaConf.is_config(cfg.lateral_angles)
        else cfg.lateral_angles,
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
        manifest = str(summary.out_dir / MANIFEST_NAME)
        print(f"{COMMAND}: error: {failure_message(summary.failed, len(summary.results), manifest)}", file=sys.stderr)
        return EXIT_CASES_FAILED
    return 0


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
@report_user_errors(COMMAND)
def _main(cfg: DictConfig) -> None:
    status = prepare_from_config(cfg)
    if status:
        raise SystemExit(status)


def main() -> None:
    """Console-script entry point."""
    run_console_script(COMMAND, _main)


if __name__ == "__main__":
    main()
