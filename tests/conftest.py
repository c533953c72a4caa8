"""Shared pytest fixtures and markers.

Builders that tests call with their own arguments are handed out as session-scoped fixtures that return the
builder (pytest's "factory as fixture"), so that module-scoped fixtures can use them too. The builders live in
``tests/support/`` (one concept per module); test modules use the fixtures and never import each other (the data
tests' marked 16^3 cases, whose constants their assertions read, are the one support module imported directly).
Shared outputs (``tiny_triplets``, ``tiny_checkpoint``) are built once per session (per xdist worker) and are
read-only: copy before changing them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support import checkpoint, configs, networks, spine_ct, volumes, xrays

os.environ.setdefault("WANDB_MODE", "disabled")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


LOGGERS_CONFIGURED_BY_HYDRA: tuple[str, ...] = ("", "hydra")  # root (job logging) and Hydra's own logger


@pytest.fixture(autouse=True)
def _drop_logging_handlers_added_by_the_test() -> Iterator[None]:
    """In-process console scripts let Hydra attach stream handlers to the test's captured stderr; once that stream
    is closed, a later test's first log record would print '--- Logging error ---' with a traceback. Remove
    the handlers a test added when it ends."""
    loggers = [logging.getLogger(name) for name in LOGGERS_CONFIGURED_BY_HYDRA]
    before = {id(logger): list(logger.handlers) for logger in loggers}
    yield
    for logger in loggers:
        for handler in [h for h in logger.handlers if h not in before[id(logger)]]:
            logger.removeHandler(handler)
            handler.close()


# ------------------------------------------------------------------------------------------------ networks
@pytest.fixture(scope="session")
def tiny_generator_kwargs() -> Callable[..., dict[str, Any]]:
    """``(cube=32, n_down=3, fused=True) -> kwargs`` of a tiny BiplanarGenerator (SingleViewGenerator: fused=False)."""
    return networks.tiny_generator_kwargs


@pytest.fixture(scope="session")
def tiny_gan_module() -> Callable[..., Any]:
    """``(cube=32, **module_kwargs) -> X2CTGANModule`` of the tiny networks."""
    return networks.tiny_gan_module


@pytest.fixture(scope="session")
def tiny_train_overrides() -> tuple[str, ...]:
    """``x2ct-train`` overrides for the tiny networks at 32^3 (the same networks as ``tiny_gan_module``)."""
    return networks.tiny_train_overrides()


@pytest.fixture(scope="session")
def tiny_train_overrides_for() -> Callable[..., tuple[str, ...]]:
    """``(cube=32, generator="biplanar") -> overrides`` for tiny networks of any ``model/generator`` option."""
    return networks.tiny_train_overrides


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="session")
def write_tiny_triplets() -> Callable[..., Path]:
    """``(root, n_train=4, n_test=2, cube=32, seed=0) -> root``: a prepared folder of synthetic triplets."""
    return volumes.write_tiny_triplets


@pytest.fixture(scope="session")
def tiny_triplets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only prepared folder: 4 training and 2 test cases at 32^3."""
    return volumes.write_tiny_triplets(tmp_path_factory.mktemp("tiny_triplets"), n_train=4, n_test=2)


@pytest.fixture(scope="session")
def write_nifti_pair() -> Callable[..., tuple[Path, Path]]:
    """``(folder, stem, hu, labels, affine, ct_suffix, mask_suffix) -> (ct_path, mask_path)``."""
    return volumes.write_nifti_pair


@pytest.fixture(scope="session")
def tiny_spine_ct() -> Callable[..., spine_ct.SpineCT]:
    """``(size=32, spacing_mm=2.0, seed=0) -> SpineCT(hu, labels, affine)``: a HU spine CT with an L1/L2 mask."""
    return spine_ct.tiny_spine_ct


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> checkpoint.TinyCheckpoint:
    """A read-only checkpoint of the tiny X2CT-GAN after one step on 2 training cases, with 3 test cases,
    spacing 4 mm and ``xray_mode="aligned"`` recorded in its triplets."""
    return checkpoint.write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))


@pytest.fixture(scope="session")
def tiny_ray_lifting_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> checkpoint.TinyCheckpoint:
    """A read-only checkpoint of the tiny ray-lifting X2CT-GAN (rays-conditioned discriminator) after one step on
    2 training cases whose triplets record a cone-beam geometry (SOD ``checkpoint.TINY_TRAINING_SOD_MM``)."""
    return checkpoint.write_tiny_ray_lifting_checkpoint(tmp_path_factory.mktemp("tiny_ray_lifting_checkpoint"))


# ------------------------------------------------------------------------------------------------ X-rays
@pytest.fixture(scope="session")
def synthetic_xray() -> Callable[..., Any]:
    """``(rows=80, cols=60, lateral=False, seed=0) -> uint8 image`` of a body with a bright spine."""
    return xrays.synthetic_xray


@pytest.fixture(scope="session")
def write_xray_pair() -> Callable[..., tuple[Path, Path]]:
    """``(folder, kind="png8" | "png16" | "dicom") -> (ap_path, lateral_path)`` of synthetic X-rays."""
    return xrays.write_xray_pair


@pytest.fixture(scope="session")
def write_dicom() -> Callable[..., Path]:
    """``(path, uint16 pixels, photometric, slope, intercept, window) -> path`` of a minimal DICOM file."""
    return xrays.write_dicom


# ------------------------------------------------------------------------------------------------ configs
@pytest.fixture(scope="session")
def compose_config() -> Callable[..., Any]:
    """``(name, overrides=(), hydra_node=False) -> DictConfig`` of ``conf/<name>.yaml``."""
    return configs.compose_config


@pytest.fixture(scope="session")
def compose_train_config() -> Callable[..., Any]:
    """``(output_dir, overrides) -> DictConfig``: the ``train`` config as ``x2ct-train`` sees it."""
    return configs.compose_train_config


@pytest.fixture(scope="session")
def tiny_prepare_overrides() -> tuple[str, ...]:
    """``x2ct-prepare`` overrides for a 32^3 cube at 4 mm, one worker, one preview."""
    return configs.TINY_PREPARE_OVERRIDES
