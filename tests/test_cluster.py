"""Hydra launchers (SLURM and local submitit) and the Optuna search: configs and multiruns on tiny triplets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from x2ct.hydra_callbacks import CreateSweepDir

SUBMITIT_EXTRA = "needs hydra-submitit-launcher: pip install -e '.[slurm]'"
OPTUNA_EXTRA = "needs hydra-optuna-sweeper: pip install -e '.[optuna]'"
# optuna 2.10 uses SQLAlchemy 1.4 APIs that warn about 2.0 (the `optuna` extra pins SQLAlchemy < 2).
IGNORE_SQLALCHEMY_20_WARNING = pytest.mark.filterwarnings("ignore:Deprecated API features detected")
# One short epoch per job.
SHORT_FIT = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
SUBPROCESS_TIMEOUT_S = 300
# W&B offline run files (run-<id>.wandb) use the LevelDB log format: a 7-byte file header, then records in 32 KiB
# blocks, each record with a 7-byte header (crc32 4, length 2 little-endian, type 1) and possibly split over blocks.
WANDB_FILE_MAGIC = b":W&B"
WANDB_BLOCK_BYTES = 32 * 1024
WANDB_HEADER_BYTES = 7
WANDB_RECORD_FULL, WANDB_RECORD_LAST = 1, 4


@pytest.fixture(scope="module")
def data_root(tiny_triplets: Path) -> Path:
    return tiny_triplets


@pytest.fixture(scope="module")
def tiny_fit(tiny_train_overrides: tuple[str, ...]) -> list[str]:
    """The tiny networks, one short epoch per job."""
    return [*tiny_train_overrides, *SHORT_FIT]


@pytest.fixture(scope="module")
def compose_train_with_hydra(compose_config: Callable[..., DictConfig]) -> Callable[[list[str]], DictConfig]:
    """``(overrides) -> DictConfig``: the ``train`` config with its ``hydra`` node (launcher, sweeper), as
    ``x2ct-train -m`` composes it."""
    return lambda overrides: compose_config("train", overrides, hydra_node=True)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh shell: no pytest or DDP variables, W&B offline with its files under tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "MASTER_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "WANDB_", "SLURM_"))
    }
    return env | {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}


def run_train_multirun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``x2ct-train -m <args>`` as a console script in a subprocess."""
    exe = Path(sys.executable).parent / "x2ct-train"
    return subprocess.run(
        [str(exe), "-m", *args],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def run_optuna_study(data_root: Path, tiny_fit: list[str], sweep_dir: Path, tmp_path: Path, *extra: str) -> Any:
    """A 2-trial ``hparams_search=optuna`` study on tiny data (``tiny_fit``: network and schedule overrides)
    through the console script; returns the optuna study loaded from its sqlite storage (after checking the sweep
    exited with status 0)."""
    import optuna

    args = [
        "hparams_search=optuna",
        *extra,
        f"data.root={data_root}",
        *tiny_fit,
        "logger=csv",
        "callbacks=model_checkpoint",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = run_train_multirun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return optuna.load_study(study_name="x2ct_loss_weights", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def wandb_records(path: Path) -> Iterator[bytes]:
    """The serialized protobuf records of a W&B offline run file (``run-<id>.wandb``)."""
    data = path.read_bytes()
    if data[: len(WANDB_FILE_MAGIC)] != WANDB_FILE_MAGIC:
        raise ValueError(f"{path} is not a W&B run file (no {WANDB_FILE_MAGIC!r} header)")
    pos, chunks = WANDB_HEADER_BYTES, []
    while pos + WANDB_HEADER_BYTES <= len(data):
        left_in_block = WANDB_BLOCK_BYTES - pos % WANDB_BLOCK_BYTES
        if left_in_block < WANDB_HEADER_BYTES:  # block trailer padding
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunks.append(data[pos + WANDB_HEADER_BYTES : pos + WANDB_HEADER_BYTES + length])
        pos += WANDB_HEADER_BYTES + length
        if kind in (WANDB_RECORD_FULL, WANDB_RECORD_LAST):
            yield b"".join(chunks)
            chunks = []


def wandb_logged_config(run_file: Path) -> dict:
    """The job config that x2ct.train logged to a W&B offline run (its ``config`` key)."""
    from wandb.proto import wandb_internal_pb2

    for raw in wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                if item.key == "config":
                    return json.loads(item.value_json)
    raise ValueError(f"{run_file} has no logged 'config'")


def test_create_sweep_dir_callback_makes_nested_dir(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multiruns" / "2024-01-01_00-00-00-000000"
    CreateSweepDir().on_multirun_start(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))
    assert sweep_dir.is_dir()


def test_slurm_launcher_requests_one_task_and_gpu_per_device(
    compose_train_with_hydra: Callable[[list[str]], DictConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=SUBMITIT_EXTRA)
    from hydra.utils import instantiate

    monkeypatch.delenv("WANDB_MODE", raising=False)
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Hydra's deprecated matching of a config file against a plugin schema
        cfg = compose_train_with_hydra(overrides)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.submitit_folder.startswith(cfg.hydra.sweep.dir + "/.submitit/")
    assert launcher.max_num_timeout == 0
    slurm = instantiate(launcher)  # the plugin accepts every key; interpolations resolved as at submission
    assert slurm.params["tasks_per_node"] == 4 and slurm.params["setup"] == ["export WANDB_MODE=offline"]
    monkeypatch.setenv("WANDB_MODE", "online")  # the mode of the submitting shell reaches the jobs
    assert instantiate(compose_train_with_hydra(overrides).hydra.launcher).params["setup"] == [
        "export WANDB_MODE=online"
    ]


def test_local_launcher_gives_each_job_one_process_with_the_trainer_devices(
    compose_train_with_hydra: Callable[[list[str]], DictConfig],
) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=SUBMITIT_EXTRA)
    cfg = compose_train_with_hydra(["hydra/launcher=local", "trainer=gpu", "trainer.devices=2"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (1, 2, 1)


@pytest.mark.full  # about 50 s on 2 CPU cores
def test_local_submitit_multirun_gives_each_job_its_checkpoint_and_wandb_run(
    data_root: Path, tiny_fit: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=SUBMITIT_EXTRA)
    sweep_dir = tmp_path / "sweep"
    done = run_train_multirun(
        [
            "hydra/launcher=local",
            f"data.root={data_root}",
            *tiny_fit,
            "model.loss.projection=1.0,2.0",
            "logger=wandb",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (sweep_dir / ".submitit").is_dir()  # the jobs went through submitit
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
    run_files = sorted(sweep_dir.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(run_files) == 2 and run_files[0].parent.name != run_files[1].parent.name
    projections = {wandb_logged_config(f)["model"]["loss"]["projection"] for f in run_files}
    assert projections == {1.0, 2.0}  # one run per job, each with its own config


def test_optuna_config_searches_loss_weights_and_lr(
    compose_train_with_hydra: Callable[[list[str]], DictConfig],
) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason=OPTUNA_EXTRA)
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_train_with_hydra(["hparams_search=optuna"])
    HydraConfig().set_config(cfg)  # the job config's `group` interpolates ${hydra:sweeper.study_name}
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (cfg.optimized_metric, sweeper.direction) == ("val/PSNR-3D", "maximize")
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert set(sweeper.params) == {
        "model.loss.reconstruction",
        "model.loss.projection",
        "model.loss.adversarial",
        "model.optimizer_g.lr",
    }
    assert cfg.group == sweeper.study_name


@pytest.mark.slow
@IGNORE_SQLALCHEMY_20_WARNING
def test_optuna_study_of_two_trials_writes_its_sqlite_storage(
    data_root: Path, tiny_fit: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason=OPTUNA_EXTRA)
    import optuna

    sweep_dir = tmp_path / "sweep"
    study = run_optuna_study(data_root, tiny_fit, sweep_dir, tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert trials[0].params != trials[1].params
    assert all(0.01 <= t.params["model.loss.adversarial"] <= 1.0 for t in trials)
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(t.value for t in trials))
    # Each trial trained with its suggested weights.
    for number, trial in enumerate(trials):
        job_config = OmegaConf.load(sweep_dir / str(number) / ".hydra" / "config.yaml")
        assert job_config.model.loss.projection == pytest.approx(trial.params["model.loss.projection"])


@pytest.mark.slow
@IGNORE_SQLALCHEMY_20_WARNING
def test_optuna_study_goes_on_after_a_failed_trial(data_root: Path, tiny_fit: list[str], tmp_path: Path) -> None:
    """An invalid value in the search space: its trial fails at model construction and the study goes on."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason=OPTUNA_EXTRA)
    import optuna

    sweep_dir = tmp_path / "sweep"
    # the config's sampler (seed 0) draws the invalid value first
    study = run_optuna_study(data_root, tiny_fit, sweep_dir, tmp_path, "model.on_nonfinite=choice(raise,not-a-policy)")
    trials = study.get_trials()
    assert [t.params["model.on_nonfinite"] for t in trials] == ["not-a-policy", "raise"]
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert OmegaConf.load(sweep_dir / "optimization_results.yaml").best_value == pytest.approx(trials[1].value)


@pytest.mark.full  # about 75 s on 2 CPU cores
def test_basic_multirun_with_ddp_spawn_on_two_cpu_processes(
    data_root: Path, tiny_fit: list[str], tmp_path: Path
) -> None:
    """The recipe for a multi-GPU box without SLURM: DDP inside each job of a multirun through ``ddp_spawn``
    (the ``ddp`` launcher would re-run the sweep). Two jobs, two ranks each, identical weights per job."""
    sweep = tmp_path / "sweep"
    args = [
        f"data.root={data_root}",
        *tiny_fit,
        "trainer=ddp_cpu",
        "trainer.strategy=ddp_spawn_find_unused_parameters_true",
        "callbacks=fingerprint",
        "logger=csv",
        "model.loss.projection=1.0,2.0",
        f"hydra.sweep.dir={sweep}",
    ]
    done = run_train_multirun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for job in ("0", "1"):
        records = [json.loads((sweep / job / "fingerprints" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert [r["world_size"] for r in records] == [2, 2]
        assert records[0]["digest"] == records[1]["digest"]
    digests = {json.loads((sweep / job / "fingerprints" / "rank0.json").read_text())["digest"] for job in ("0", "1")}
    assert len(digests) == 2  # the two jobs trained different models
