"""The LightningDataModule: train / validation / test splits of a prepared triplet folder and their loaders.

Folder layout (written by ``x2ct-prepare``): ``<root>/<case_id>/ct_xray_data.h5``, ``<root>/train.txt`` and
``<root>/test.txt`` (case ids, one a line). The validation cases are a seeded hold-out of ``train.txt``, or
the ids of an explicit ``val_list`` file. ``predict`` uses the test cases.

Batch size is per device: under DDP Lightning wraps each loader in a DistributedSampler by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from x2ct.data.augment import AugmentConfig
from x2ct.data.dataset import X2CTDataset, lateral_angle_range_or_none
from x2ct.data.epoch_sampler import EpochSampler
from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU, CTWindow
from x2ct.errors import InputNotFoundError, InvalidOptionError
from x2ct.io.hdf5 import lateral_key

COMMENT_PREFIX = "#"  # lines of a case list starting with this are ignored
FIT_STAGES = ("fit", "validate")
EVALUATION_STAGES = ("test", "predict")
KNOWN_STAGES = (*FIT_STAGES, *EVALUATION_STAGES)


@dataclass(frozen=True)
class Splits:
    """Case ids of the training and validation sets (disjoint, in list-file order)."""

    train: list[str]
    val: list[str]


def read_case_list(path: Path) -> list[str]:
    """Case ids of a list file, one a line; blank lines and ``#`` comments skipped.

    Raises FileNotFoundError (missing file) or ValueError (no ids, or an id listed twice), naming the file.
    """
    if not path.is_file():
        raise InputNotFoundError(f"case list {path} does not exist (or is not a file)")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [case_id for case_id in ids if case_id and not case_id.startswith(COMMENT_PREFIX)]
    if not ids:
        raise InvalidOptionError(f"case list {path} is empty: it must name at least one case")
    duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if duplicates:
        raise InvalidOptionError(f"case list {path} names these cases more than once: {duplicates}")
    return ids


def holdout_split(case_ids: Sequence[str], val_fraction: float, seed: int) -> Splits:
    """Hold out ``round(val_fraction * n)`` cases (at least 1 when ``val_fraction > 0`` and n >= 2, at most n - 1)
    chosen by ``seed``; both parts keep the input order. Same inputs -> same split."""
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidOptionError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ids = list(case_ids)
    n_val = 0
    if val_fraction > 0.0 and len(ids) >= 2:
        n_val = min(max(1, round(val_fraction * len(ids))), len(ids) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(ids))[:n_val].tolist())
    return Splits(
        train=[c for i, c in enumerate(ids) if i not in chosen],
        val=[c for i, c in enumerate(ids) if i in chosen],
    )


class X2CTDataModule(LightningDataModule):
    """Train / validation / test loaders over a prepared triplet folder.

    Samples are dicts ``{"ct": (1, cube, cube, cube), "xray1": (1, S, S), "xray2": (1, S, S), "proj_xray1":
    (3, 4), "proj_xray2": (3, 4), "case_id"}``: images float32 in [0, 1], the projection matrices of the two views
    float32 (see :class:`x2ct.data.dataset.X2CTDataset` and :mod:`x2ct.drr.projection`). Batches (train, val,
    test and predict alike) add a leading batch axis, so ``proj_xray1`` / ``proj_xray2`` are (N, 3, 4), and
    ``case_id`` becomes a list of str.

    Args:
        root: the prepared folder (``x2ct-prepare out_dir``).
        lateral_angle: lateral view used as ``xray2``: 90 -> dataset ``xray2``, 85 -> ``xray2_085``, ...
        cube: CT edge length in voxels the network sees (stored CTs of another size are resized).
        xray_size: X-ray edge length in pixels; None = ``cube``.
        batch_size: samples per batch PER DEVICE.
        num_workers: DataLoader worker processes (0 = load in the main process).
        val_fraction: share of ``train_list`` held out for validation (ignored when ``val_list`` is given).
        seed: seed of the validation hold-out.
        ct_window_hu: ``(low, high)`` HU mapped to [0, 1]; default (-1024, 1476), i.e. stored [0, 2500].
        pin_memory: pin batches in page-locked memory (faster copies to a GPU).
        persistent_workers: keep workers alive between epochs (only used when ``num_workers > 0``).
        augment: None (default, as the official code) or a dict with ``flip_lr``, ``xray_gamma``,
            ``xray_noise_std`` (see :mod:`x2ct.data.augment`); training set only.
        train_list: training case list, relative to ``root`` (or absolute).
        test_list: test case list, relative to ``root`` (or absolute); also used by ``predict``.
        val_list: optional validation case list; its ids are removed from the training ids.
        train_lateral_angles: ``[low, high]`` degrees for angle-randomized training: each training item's lateral
            view is drawn among the views its file stores in that range (see :class:`X2CTDataset`); validation,
            test and predict keep ``lateral_angle``. None: every split uses ``lateral_angle``.
        shuffle_seed: seed of the training order and of each training item's random draws (augmentation, lateral
            angle), both derived per epoch from ``(shuffle_seed, epoch)`` (see :mod:`x2ct.data.epoch_sampler`), so a
            run resumed from a checkpoint sees the data the uninterrupted run saw (``x2ct-train``: the run's ``seed``).

    Resuming: the data module's ``state_dict`` records how many batches of the current epoch were trained when a
    checkpoint is saved in the middle of an epoch; a run resumed from it skips them and goes on with the next one.
    """

    def __init__(
        self,
        root: str | Path,
        lateral_angle: float = 90,
        cube: int = 128,
        xray_size: int | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        ct_window_hu: Sequence[float] = DEFAULT_CT_WINDOW_HU,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        augment: Mapping[str, Any] | None = None,
        train_list: str = "train.txt",
        test_list: str = "test.txt",
        val_list: str | None = None,
        train_lateral_angles: Sequence[float] | None = None,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.lateral_angle = float(lateral_angle)
        lateral_key(self.lateral_angle)  # rejects a bad angle at construction
        angle_range = lateral_angle_range_or_none(
            train_lateral_angles, "data.train_lateral_angles"
        )  # rejects a bad range at construction
        self.train_lateral_angles = None if angle_range is None else list(angle_range)
        self.cube = _positive_int(cube, "cube")
        self.xray_size = _positive_int(xray_size, "xray_size") if xray_size is not None else self.cube
        self.batch_size = _positive_int(batch_size, "batch_size")
        if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
            raise InvalidOptionError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.num_workers = int(num_workers)
        if not 0.0 <= float(val_fraction) < 1.0:
            raise InvalidOptionError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        self.shuffle_seed = int(shuffle_seed)
        self.window = CTWindow.from_pair(ct_window_hu)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.augment = AugmentConfig.from_mapping(augment) if augment is not None else None
        self.train_list = str(train_list)
        self.test_list = str(test_list)
        self.val_list = str(val_list) if val_list is not None else None
        self.save_hyperparameters()
        # plain types only (checkpoints load with torch's weights_only); absolute, so that the checkpoint still
        # finds its training data (geometry, voxel size) when read from another working directory
        self.hparams.root = str(self.root.absolute())

        self._splits: Splits | None = None
        self._test_ids: list[str] | None = None
        self.train_set: X2CTDataset | None = None
        self.val_set: X2CTDataset | None = None
        self.test_set: X2CTDataset | None = None
        self._resume_position: tuple[int, int] | None = None  # (epoch, training samples already seen in it)

    # ------------------------------------------------------------------------------------------ splits

    def _list_path(self, name: str) -> Path:
        return self.root / name  # an absolute ``name`` replaces the root

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise InputNotFoundError(f"data root {self.root} does not exist (or is not a folder)")

    @property
    def splits(self) -> Splits:
        """Training and validation ids (read from the list files on first use)."""
        if self._splits is None:
            self._check_root()
            train_ids = read_case_list(self._list_path(self.train_list))
            if self.val_list is not None:
                val_ids = read_case_list(self._list_path(self.val_list))
                val_set = set(val_ids)
                remaining = [case_id for case_id in train_ids if case_id not in val_set]
                if not remaining:
                    raise ValueError(
                        f"every case of {self._list_path(self.train_list)} is also in "
                        f"{self._list_path(self.val_list)}: no training cases left"
                    )
                self._splits = Splits(train=remaining, val=val_ids)
            else:
                self._splits = holdout_split(train_ids, self.val_fraction, self.seed)
        return self._splits

    @property
    def test_ids(self) -> list[str]:
        """Test ids (read from ``test_list`` on first use)."""
        if self._test_ids is None:
            self._check_root()
            self._test_ids = read_case_list(self._list_path(self.test_list))
        return self._test_ids

    @property
    def n_train(self) -> int:
        return len(self.splits.train)

    @property
    def n_val(self) -> int:
        return len(self.splits.val)

    @property
    def n_test(self) -> int:
        return len(self.test_ids)

    # ------------------------------------------------------------------------------------------- setup

    def _dataset(
        self, case_ids: list[str], augment: AugmentConfig | None, angle_range: Sequence[float] | None = None
    ) -> X2CTDataset:
        return X2CTDataset(
            root=self.root,
            case_ids=case_ids,
            lateral_angle=self.lateral_angle,
            cube=self.cube,
            xray_size=self.xray_size,
            ct_window_hu=(self.window.low_hu, self.window.high_hu),
            augment=augment,
            lateral_angle_range=angle_range,
            seed=self.shuffle_seed,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a stage needs: ``fit`` train + val, ``validate`` val, ``test`` / ``predict`` the
        test set, None all of them. Files are only checked for existence here, never opened."""
        if stage is not None and stage not in KNOWN_STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {KNOWN_STAGES} or None")
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset(self.splits.train, self.augment, self.train_lateral_angles)
        if stage in (None, *FIT_STAGES) and self.val_set is None and self.splits.val:
            self.val_set = self._dataset(self.splits.val, augment=None)
        if stage in (None, *EVALUATION_STAGES) and self.test_set is None:
            self.test_set = self._dataset(self.test_ids, augment=None)

    # ------------------------------------------------------------------------------------------ loaders

    def _loader(self, dataset: X2CTDataset | None, stage: str, sampler: EpochSampler | None = None) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"the {stage} dataset is not built: call setup({stage!r}) first")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            drop_last=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            # the loader's own generator: drawing worker seeds leaves the global torch stream (dropout) alone
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches: an :class:`EpochSampler` over this rank's share (Lightning sets its epoch)."""
        if self.train_set is None:
            return self._loader(None, stage="fit")
        trainer = self.trainer
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(self.train_set, seed=self.shuffle_seed, num_replicas=world_size, rank=rank)
        if self._resume_position is not None:
            sampler.skip_in_epoch(*self._resume_position)
            self._resume_position = None
        return self._loader(self.train_set, stage="fit", sampler=sampler)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation loader, or an empty list (Lightning then skips validation) when no case is held out
        (``val_fraction=0`` or a single training case)."""
        if self.val_set is None and not self.splits.val:
            return []
        return self._loader(self.val_set, stage="validate")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, stage="test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, stage="predict")

    # ----------------------------------------------------------------------------------------- resuming

    def state_dict(self) -> dict[str, int]:
        """Saved with every checkpoint: ``{"epoch", "batches_done"}`` when it is saved in the middle of a training
        epoch (after ``batches_done`` batches of epoch ``epoch``), else empty."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        loop = trainer.fit_loop
        batches_done = loop.epoch_loop.batch_progress.current.processed
        if not 0 < batches_done < trainer.num_training_batches:
            return {}
        return {"epoch": loop.epoch_progress.current.processed, "batches_done": batches_done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Remember a mid-epoch position: the next training loader skips the samples already trained on."""
        if state_dict:
            samples = int(state_dict["batches_done"]) * self.batch_size
            self._resume_position = (int(state_dict["epoch"]), samples)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
