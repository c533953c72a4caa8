"""The torch Dataset over per-case triplet files ``<root>/<case_id>/ct_xray_data.h5``.

Files are opened lazily, once per item, inside whichever process reads it (a DataLoader worker or the main
process) and closed again: the dataset holds no HDF5 handle, so it pickles for spawn workers and ddp_spawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from x2ct.data.augment import AugmentConfig, TripletAugmenter
from x2ct.data.epoch_sampler import EpochIndex
from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU, CTWindow, normalize_ct, normalize_xray
from x2ct.drr.projection import triplet_projection_matrices
from x2ct.errors import InputNotFoundError, InvalidOptionError
from x2ct.io.hdf5 import (
    TRIPLET_FILENAME,
    Triplet,
    TripletFileError,
    lateral_key,
    read_triplet,
    stored_lateral_angles,
)
from x2ct.utils.seeding import ITEM_STREAM, derived_seed

Sample = dict[str, Any]
TORCH_SEED_MODULUS = 2**63  # keeps a derived seed inside the range torch.Generator.manual_seed accepts


class X2CTDataset(Dataset[Sample]):
    """Normalized (CT, AP X-ray, lateral X-ray) samples of the listed cases.

    Each item is a dict in canonical axes (D, H, W), S = ``xray_size`` (see :mod:`x2ct.data.normalization` for
    the scaling):

    * ``"ct"``: float32 (1, cube, cube, cube) in [0, 1];
    * ``"xray1"``: float32 (1, S, S) in [0, 1], the AP view; ``"xray2"``: float32 (1, S, S) in [0, 1], the
      lateral view at ``lateral_angle``;
    * ``"proj_xray1"``, ``"proj_xray2"``: float32 (3, 4) projection matrices of those two views, mapping
      homogeneous CT grid coordinates ``(x, y, z, 1)`` to image coordinates ``(u s, v s, s)``, both in the
      ``grid_sample(align_corners=False)`` frame (see :mod:`x2ct.drr.projection`); built from the geometry the
      file records (aligned parallel geometry when it records none), independent of ``cube`` and ``xray_size``,
      and mirrored with the data by the ``flip_lr`` augmentation;
    * ``"case_id"``: str.

    Args:
        root: folder holding one ``<case_id>/ct_xray_data.h5`` per case.
        case_ids: the cases of this split, in order (non-empty, no duplicates); every file must exist.
        lateral_angle: which lateral view becomes ``xray2`` (90 -> dataset ``xray2``, 85 -> ``xray2_085``).
        cube: CT edge length in voxels after resizing; None keeps the stored shape.
        xray_size: X-ray edge length in pixels after resizing; None means ``cube`` (stored shape if both None).
        ct_window_hu: ``(low, high)`` HU mapped to [0, 1]; default (-1024, 1476) = stored [0, 2500].
        augment: augmentation settings (training only) or None for none.
        augment_seed_offset: added to the process's ``torch.initial_seed()`` to seed the augmentation
            generator (lets two datasets in one process draw different streams).
        lateral_angle_range: ``(low, high)`` degrees, or None. When given (angle-randomized training), each item's
            ``xray2`` is drawn uniformly among the lateral views its file stores within the range (inclusive),
            with the same seeded per-process generator as the augmentation, and its ``proj_xray2`` follows the
            drawn view; ``lateral_angle`` is then unused. Evaluation datasets keep a fixed angle.
        seed: seed of the per-item draws of items indexed by an :class:`~x2ct.data.epoch_sampler.EpochIndex`
            (what the training loader's sampler yields): such an item draws its augmentation and lateral angle
            from a generator seeded by ``(seed, epoch, index)`` (plus ``augment_seed_offset``), whatever process
            reads it, so a resumed run repeats the uninterrupted run's draws. A plain integer index draws from the
            process's generator (see :meth:`_process_generator`).
    """

    def __init__(
        self,
        root: str | Path,
        case_ids: Sequence[str],
        lateral_angle: float = 90,
        cube: int | None = 128,
        xray_size: int | None = None,
        ct_window_hu: Sequence[float] = DEFAULT_CT_WINDOW_HU,
        augment: AugmentConfig | None = None,
        augment_seed_offset: int = 0,
        lateral_angle_range: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputNotFoundError(f"data root {self.root} does not exist (or is not a folder)")
        self.case_ids = [str(case_id) for case_id in case_ids]
        if not self.case_ids:
            raise ValueError(f"no cases given for the dataset under {self.root}")
        duplicates = sorted({c for c in self.case_ids if self.case_ids.count(c) > 1})
        if duplicates:
            raise ValueError(f"case ids listed more than once under {self.root}: {duplicates}")
        missing = [str(self.path_of(c)) for c in self.case_ids if not self.path_of(c).is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise InputNotFoundError(f"{len(missing)} triplet file(s) missing: {shown}")
        self.lateral_angle = float(lateral_angle)
        lateral_key(self.lateral_angle)  # validates the angle now rather than at the first item
        self.cube = _positive_or_none(cube, "cube")
        self.xray_size = _positive_or_none(xray_size, "xray_size") if xray_size is not None else self.cube
        self.window = CTWindow.from_pair(ct_window_hu)
        self.augment = augment if augment is not None and not augment.is_identity else None
        self._augmenter = TripletAugmenter(self.augment) if self.augment is not None else None
        self.augment_seed_offset = int(augment_seed_offset)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None
        self._generator_pid: int | None = None
        self.lateral_angle_range = lateral_angle_range_or_none(lateral_angle_range)
        # (case id, lateral angle) -> float32 (3, 4) matrices of xray1 and xray2
        self._projections: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
        self._stored_angles: dict[str, list[float]] = {}  # case id -> lateral angles within the range

    def __len__(self) -> int:
        return len(self.case_ids)

    def path_of(self, case_id: str) -> Path:
        """The triplet file of ``case_id``."""
        return self.root / case_id / TRIPLET_FILENAME

    def __getitem__(self, index: int | EpochIndex) -> Sample:
        generator = None
        if isinstance(index, EpochIndex):
            generator = self._item_generator(index)
            index = index.index
        case_id = self.case_ids[index]
        path = self.path_of(case_id)
        try:
            triplet = read_triplet(path, self._lateral_angle_of(case_id, path, generator))
        except TripletFileError as error:
            raise type(error)(f"case {case_id!r}: {error}") from error
        proj_xray1, proj_xray2 = self._projection_matrices(case_id, triplet, path)
        sample: Sample = {
            "ct": normalize_ct(triplet.ct_hu_plus_1024, self.cube, self.window)[None],
            "xray1": normalize_xray(triplet.xray1, self.xray_size)[None],
            "xray2": normalize_xray(triplet.xray2, self.xray_size)[None],
            "proj_xray1": torch.tensor(proj_xray1),
            "proj_xray2": torch.tensor(proj_xray2),
            "case_id": case_id,
        }
        if self._augmenter is not None:
            sample = self._augmenter(sample, generator if generator is not None else self._process_generator())
        return sample

    def _item_generator(self, item: EpochIndex) -> torch.Generator:
        """The generator of one item of one epoch, seeded by ``(seed, epoch, index)`` and ``augment_seed_offset``."""
        seed = (
            derived_seed(ITEM_STREAM, self.seed, item.epoch, item.index) + self.augment_seed_offset
        ) % TORCH_SEED_MODULUS
        return torch.Generator().manual_seed(seed)

    def _lateral_angle_of(self, case_id: str, path: Path, generator: torch.Generator | None = None) -> float:
        """The fixed ``lateral_angle``, or (angle-randomized) a draw among the case's stored views in range."""
        if self.lateral_angle_range is None:
            return self.lateral_angle
        if case_id not in self._stored_angles:
            low, high = self.lateral_angle_range
            in_range = [a for a in stored_lateral_angles(path) if low <= a <= high]
            if not in_range:
                raise TripletFileError(
                    f"case {case_id!r}: {path} stores no lateral view within {low:g}-{high:g} degrees "
                    f"(stored: {stored_lateral_angles(path) or 'none'}); prepare it with more lateral_angles"
                )
            self._stored_angles[case_id] = in_range
        choices = self._stored_angles[case_id]
        index = int(
            torch.randint(
                len(choices), (1,), generator=generator if generator is not None else self._process_generator()
            )
        )
        return choices[index]

    def _projection_matrices(self, case_id: str, triplet: Triplet, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """float32 (3, 4) matrices of the case's xray1 and of its xray2 view, computed once per (case, angle)
        from the file's attributes."""
        key = (case_id, triplet.lateral_angle)
        if key not in self._projections:
            try:
                matrices = triplet_projection_matrices(
                    triplet.attrs, triplet.ct_hu_plus_1024.shape, triplet.lateral_angle, where=str(path)
                )
            except ValueError as error:
                raise TripletFileError(f"case {case_id!r}: {error}") from error
            self._projections[key] = (matrices[0].astype(np.float32), matrices[1].astype(np.float32))
        return self._projections[key]

    def _process_generator(self) -> torch.Generator:
        """The augmentation generator of the current process, seeded from ``torch.initial_seed()``.

        In a DataLoader worker that seed is the worker's own (base seed + worker id; Lightning's
        ``seed_everything(workers=True)`` derives it from the global seed and rank), in the main process it is
        the global torch seed. The generator lives as long as the process, so persistent workers draw new
        numbers every epoch. A copy made by pickling or forking gets a fresh one.
        """
        pid = os.getpid()
        if self._generator is None or self._generator_pid != pid:
            seed = (torch.initial_seed() + self.augment_seed_offset) % TORCH_SEED_MODULUS
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_pid = pid
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_generator"] = None  # generators are process-local; re-seeded where the copy is used
        state["_generator_pid"] = None
        return state


def _positive_or_none(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise InvalidOptionError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def lateral_angle_range_or_none(
    value: Sequence[float] | None, name: str = "lateral_angle_range"
) -> tuple[float, float] | None:
    """``(low, high)`` degrees with 0 < low <= high < 180, or None; errors name the option ``name``."""
    if value is None:
        return None
    bounds = tuple(float(v) for v in value)
    if len(bounds) != 2 or not 0.0 < bounds[0] <= bounds[1] < 180.0:
        raise InvalidOptionError(f"{name} must be [low, high] degrees with 0 < low <= high < 180, got {value!r}")
    return bounds  # type: ignore[return-value]
