"""Hydra callbacks (``hydra.callbacks`` in a config) for multiruns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class CreateSweepDir(Callback):
    """Create ``hydra.sweep.dir`` when a multirun starts.

    Hydra's launchers create the sweep dir only when they launch the first job, but a sweeper may need it earlier:
    the Optuna sweeper opens its SQLite storage (``sqlite:///<sweep dir>/optuna.db``) before any job runs.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
