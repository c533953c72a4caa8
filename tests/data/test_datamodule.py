"""X2CTDataModule: splits, list files, stages, loaders, augmentation on the training set only, a Lightning run,
the Hydra config, and the projection matrices in every batch."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule, Trainer
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, SequentialSampler

from tests.support.marked_cases import CUBE, write_prepared_folder
from x2ct.config_dir import CONFIG_DIR
from x2ct.data.datamodule import X2CTDataModule, holdout_split, read_case_list
from x2ct.data.epoch_sampler import EpochSampler
from x2ct.drr import ViewSpec, projection_matrix

TRAIN_IDS = [f"train_{i:02d}" for i in range(10)]
TEST_IDS = ["test_00", "test_01", "test_02"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared_folder(tmp_path_factory.mktemp("prepared"), TRAIN_IDS, TEST_IDS)


def make_module(root: Path, **overrides: object) -> X2CTDataModule:
    return X2CTDataModule(root, **{"cube": CUBE, **overrides})


# ------------------------------------------------------------------------------------------------ splits


def test_holdout_is_reproducible_disjoint_and_complete(root: Path) -> None:
    first, second = make_module(root, seed=3).splits, make_module(root, seed=3).splits
    assert first == second
    assert len(first.val) == 1 and len(first.train) == 9  # round(0.1 * 10)
    assert set(first.train).isdisjoint(first.val) and set(first.train) | set(first.val) == set(TRAIN_IDS)
    assert first.train == [c for c in TRAIN_IDS if c in first.train]  # list-file order kept
    other_seeds = {tuple(make_module(root, seed=s, val_fraction=0.3).splits.val) for s in range(6)}
    assert len(other_seeds) > 1  # the seed matters


@pytest.mark.parametrize(
    ("n_cases", "fraction", "expected_val"),
    [(10, 0.3, 3), (2, 0.1, 1), (5, 0.01, 1), (1, 0.5, 0), (10, 0.0, 0), (3, 0.9, 2)],
)
def test_holdout_size(n_cases: int, fraction: float, expected_val: int) -> None:
    split = holdout_split([f"c{i}" for i in range(n_cases)], fraction, seed=0)
    assert len(split.val) == expected_val and len(split.train) == n_cases - expected_val


def test_val_from_list_file(root: Path, tmp_path: Path) -> None:
    val_file = tmp_path / "val.txt"
    val_file.write_text("# held out by hand\ntrain_02\n\ntrain_07\n")
    module = make_module(root, val_list=str(val_file))
    assert module.splits.val == ["train_02", "train_07"]
    assert module.splits.train == [c for c in TRAIN_IDS if c not in ("train_02", "train_07")]
    assert (module.n_train, module.n_val, module.n_test) == (8, 2, 3)


def test_list_file_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"case list .*missing\.txt"):
        _ = make_module(root, train_list="missing.txt").n_train
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        read_case_list(empty)
    twice = tmp_path / "twice.txt"
    twice.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"twice\.txt names these cases more than once: \['a'\]"):
        read_case_list(twice)
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere"):
        make_module(tmp_path / "nowhere").setup("fit")
    everything = tmp_path / "all.txt"
    everything.write_text("\n".join(TRAIN_IDS))
    with pytest.raises(ValueError, match="no training cases left"):
        _ = make_module(root, val_list=str(everything)).splits


def test_missing_case_file_names_the_path(tmp_path: Path) -> None:
    root = write_prepared_folder(tmp_path, ["a", "b"], ["t"])
    (root / "train.txt").write_text("a\nb\nghost\n")
    with pytest.raises(FileNotFoundError, match=r"ghost/ct_xray_data\.h5"):
        make_module(root, val_fraction=0.0).setup("fit")


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("cube", 0),
        ("batch_size", 0),
        ("num_workers", -1),
        ("val_fraction", 1.0),
        ("lateral_angle", 200),
        ("xray_size", 2.5),
    ],
)
def test_bad_arguments_raise(root: Path, argument: str, value: object) -> None:
    with pytest.raises(ValueError, match=argument.split("_")[0]):
        make_module(root, **{argument: value})


# ------------------------------------------------------------------------------------- stages and loaders


def test_stages_build_only_what_they_need(root: Path) -> None:
    module = make_module(root)
    module.setup("test")
    assert module.test_set is not None and module.train_set is None and module.val_set is None
    with pytest.raises(RuntimeError, match=r"setup\('fit'\)"):
        module.train_dataloader()
    module.setup("validate")
    assert module.val_set is not None and module.train_set is None
    module.setup("fit")
    assert module.train_set is not None and len(module.train_set) == module.n_train
    with pytest.raises(ValueError, match="unknown stage"):
        module.setup("train")


def test_loader_settings(root: Path) -> None:
    module = make_module(root, batch_size=4, num_workers=0, persistent_workers=True)
    module.setup(None)
    train, val, test, predict = (
        module.train_dataloader(),
        module.val_dataloader(),
        module.test_dataloader(),
        module.predict_dataloader(),
    )
    assert isinstance(train.sampler, EpochSampler) and not train.drop_last  # shuffled per (seed, epoch)
    assert isinstance(val.sampler, SequentialSampler) and isinstance(test.sampler, SequentialSampler)
    assert train.batch_size == 4 and len(train) == 3  # 9 cases, last batch of 1 kept
    assert not train.persistent_workers  # only with num_workers > 0
    assert [c for batch in predict for c in batch["case_id"]] == TEST_IDS
    batch = next(iter(test))
    assert batch["ct"].shape == (3, 1, CUBE, CUBE, CUBE) and batch["xray2"].shape == (3, 1, CUBE, CUBE)
    with_workers = make_module(root, num_workers=2, persistent_workers=True)
    with_workers.setup("test")
    assert with_workers.test_dataloader().persistent_workers


def test_lateral_angle_reaches_the_samples(root: Path) -> None:
    module = make_module(root, lateral_angle=85)
    module.setup("test")
    assert module.test_set[0]["xray2"][0, 5, 5].item() == pytest.approx((85 + 100) / 255)


def test_augmentation_only_on_the_training_set(root: Path) -> None:
    module = make_module(root, augment={"flip_lr": 1.0, "xray_noise_std": 0.05})
    plain = make_module(root)
    for m in (module, plain):
        m.setup(None)
    assert torch.equal(module.train_set[0]["ct"], plain.train_set[0]["ct"].flip(-1))
    assert not torch.equal(module.train_set[0]["xray2"], plain.train_set[0]["xray2"])
    for name in ("val_set", "test_set"):
        augmented, untouched = getattr(module, name)[0], getattr(plain, name)[0]
        assert all(torch.equal(augmented[k], untouched[k]) for k in ("ct", "xray1", "xray2"))


# ------------------------------------------------------------------------------------------ Lightning run


class CaseRecorder(LightningModule):
    """A one-parameter module that records which cases each stage saw."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[str, list[str]] = {"train": [], "val": [], "test": []}

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        self.seen["train"] += batch["case_id"]
        return ((batch["ct"].mean() - self.weight) ** 2).mean()

    def validation_step(self, batch: dict, batch_index: int) -> None:
        self.seen["val"] += batch["case_id"]

    def test_step(self, batch: dict, batch_index: int) -> None:
        self.seen["test"] += batch["case_id"]

    def predict_step(self, batch: dict, batch_index: int) -> list[str]:
        return batch["case_id"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def quiet_trainer() -> Trainer:
    return Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def test_lightning_fit_test_predict(root: Path) -> None:
    module, model = make_module(root, batch_size=2, val_fraction=0.2), CaseRecorder()
    trainer = quiet_trainer()
    trainer.fit(model, datamodule=module)
    assert sorted(model.seen["train"]) == sorted(module.splits.train)
    assert model.seen["val"] == module.splits.val
    trainer.test(model, datamodule=module, verbose=False)
    assert model.seen["test"] == TEST_IDS
    predictions = trainer.predict(model, datamodule=module)
    assert [c for batch in predictions for c in batch] == TEST_IDS


def test_lightning_fit_without_validation_cases(root: Path) -> None:
    module, model = make_module(root, batch_size=5, val_fraction=0.0), CaseRecorder()
    assert module.n_val == 0 and module.val_dataloader() == []
    quiet_trainer().fit(model, datamodule=module)
    assert len(model.seen["train"]) == len(TRAIN_IDS) and model.seen["val"] == []


# ------------------------------------------------------------------------------------------ Hydra config


def test_hydra_config_lists_every_argument_with_its_default(root: Path) -> None:
    config = OmegaConf.load(Path(CONFIG_DIR) / "data" / "x2ct.yaml")
    assert config._target_ == "x2ct.data.datamodule.X2CTDataModule"
    parameters = inspect.signature(X2CTDataModule.__init__).parameters
    arguments = {name: p.default for name, p in parameters.items() if name != "self"}
    assert set(config) - {"_target_", "_convert_"} == set(arguments)
    assert config.root == "data/phantoms"
    run_seed = {"shuffle_seed": "${seed}"}  # follows the run's seed (resolved in the train config)
    assert {name: config._get_node(name)._value() for name in run_seed} == run_seed
    for name, default in arguments.items():
        if default is not inspect.Parameter.empty and name not in run_seed:
            value = OmegaConf.to_object(config[name]) if OmegaConf.is_config(config[name]) else config[name]
            assert value == (list(default) if isinstance(default, tuple) else default), name
    config.root, config.cube, config.shuffle_seed = str(root), CUBE, 0
    config.augment = {"flip_lr": 0.5, "xray_gamma": [0.8, 1.2]}
    module = instantiate(config)
    assert isinstance(module, X2CTDataModule) and module.n_test == len(TEST_IDS)
    assert module.augment is not None and module.augment.xray_gamma == (0.8, 1.2)


# ----------------------------------------------------------------------------------- projection matrices

AP_VIEW = ViewSpec("xray1", 0.0)
ALIGNED_PARALLEL = {  # the X2CT convention: xray1 u = x, v = z; xray2 u = y, v = z
    "proj_xray1": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    "proj_xray2": [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
}


def stage_loaders(module: X2CTDataModule) -> dict[str, DataLoader]:
    module.setup(None)
    return {
        "train": module.train_dataloader(),
        "val": module.val_dataloader(),
        "test": module.test_dataloader(),
        "predict": module.predict_dataloader(),
    }


def test_every_loader_carries_the_projection_matrices(geometry_folder: Any) -> None:
    """(N, 3, 4) float32 matrices of each case's recorded geometry at the module's lateral angle, whatever the
    cube and X-ray size the batches are resized to."""
    angle = 85.0
    views = {"proj_xray1": AP_VIEW, "proj_xray2": ViewSpec("xray2", angle, lateral=True)}
    cases = {case.case_id: case for case in geometry_folder.cases}
    module = X2CTDataModule(
        geometry_folder.root, lateral_angle=angle, cube=16, xray_size=20, batch_size=2, val_fraction=0.34
    )
    for stage, loader in stage_loaders(module).items():
        batch = next(iter(loader))
        assert batch["xray1"].shape[-1] == 20, stage
        for key, view in views.items():
            assert batch[key].shape == (len(batch["case_id"]), 3, 4) and batch[key].dtype == torch.float32
            for matrix, case_id in zip(batch[key], batch["case_id"], strict=True):
                case = cases[case_id]
                expected = projection_matrix(
                    view,
                    (geometry_folder.cube,) * 3,
                    geometry_folder.spacing_mm,
                    case.iso_mm,
                    geometry=case.geometry,
                    sod_mm=geometry_folder.sod_mm,
                )
                np.testing.assert_allclose(matrix.numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=f"{stage} {key}")


def test_files_without_geometry_get_aligned_parallel_matrices(
    root: Path, fresh_projection_log: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="x2ct.drr.projection"):
        batches = [next(iter(loader)) for loader in stage_loaders(make_module(root, batch_size=2)).values()]
    for batch in batches:
        shape = (len(batch["case_id"]), 3, 4)
        for key, expected in ALIGNED_PARALLEL.items():
            assert batch[key].shape == shape and batch[key].dtype == torch.float32
            np.testing.assert_allclose(batch[key].numpy(), np.broadcast_to(expected, shape), atol=1e-6)
    assert len(caplog.records) == 1 and "aligned parallel" in caplog.records[0].getMessage()


def test_random_lateral_angles_only_on_the_training_set(geometry_folder: Any) -> None:
    datamodule = X2CTDataModule(
        root=geometry_folder.root, cube=geometry_folder.cube, val_fraction=0.0, train_lateral_angles=[80, 95]
    )
    datamodule.setup()
    assert datamodule.train_set.lateral_angle_range == (80.0, 95.0)
    assert datamodule.test_set.lateral_angle_range is None and datamodule.test_set.lateral_angle == 90.0
    with pytest.raises(ValueError, match=r"data\.train_lateral_angles must be \[low, high\]"):
        X2CTDataModule(root=geometry_folder.root, train_lateral_angles=[95])


def test_the_recorded_root_is_absolute(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints keep the data module's hparams: an absolute root still finds the training data (geometry,
    voxel size) when the checkpoint is read from another working directory."""
    monkeypatch.chdir(root.parent)
    datamodule = X2CTDataModule(root.name, cube=16)
    assert datamodule.hparams.root == str(root.absolute())
    assert Path(datamodule.hparams.root).is_absolute()
