"""CTSpine1K: ``{raw_data|rawdata}/volumes/<SUBSET>/<stem>.nii.gz`` with ``.../labels/<SUBSET>/<stem>_seg.nii.gz``,
or the mirror layout ``data/...`` + ``label/...``; optional subset filter and the official ``data_split.txt``."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from x2ct.io.ct_units import CT_UNITS_HU
from x2ct.io.nifti import nifti_stem
from x2ct.sources.base import (
    CaseRef,
    FolderSource,
    nifti_suffix,
    preview_list,
    require_complete,
    safe_case_id,
)

log = logging.getLogger(__name__)

#: (volume folder, label folder) pairs tried under a CTSpine1K root, in this order; the first existing is used.
CTSPINE1K_FOLDER_PAIRS: tuple[tuple[str, str], ...] = (
    ("raw_data/volumes", "raw_data/labels"),
    ("rawdata/volumes", "rawdata/labels"),
    ("volumes", "labels"),
    ("data", "label"),
)
CTSPINE1K_SPLIT_FILE = "data_split.txt"
#: Section headers of ``data_split.txt`` (lower case) -> split.
CTSPINE1K_SPLIT_SECTIONS: dict[str, str] = {
    "trainset": "train",
    "train": "train",
    "training": "train",
    "test_public": "test",
    "test_private": "test",
    "testset": "test",
    "test": "test",
    "validation": "test",
    "val": "test",
}
_SPLIT_HEADER = re.compile(r"^\s*([A-Za-z_ ]+?)\s*:\s*$")
_NIFTI_NAME = re.compile(r".+?\.nii(?:\.gz)?", re.IGNORECASE)


def parse_ctspine1k_split(path: str | Path, mask_suffix: str = "_seg") -> dict[str, str]:
    """Read a CTSpine1K ``data_split.txt`` into ``{stem: "train" | "test"}``.

    Assumed format (the official file): section header lines ``trainset:``, ``test_public:``,
    ``test_private:`` (also accepted: train/training/test/testset/validation/val), each followed by one entry
    per line. An entry is a file name (``1.3.6.1....0001.nii.gz``), a stem (``liver_110``) or a relative path
    (only the file name counts); a trailing ``mask_suffix`` is removed; blank lines are skipped; names glued
    on one line (``a.nii.gzb.nii.gz``, present in the official file) are split. test_public and test_private
    both map to "test". Raises ValueError for entries before any header, unknown headers, or a stem listed in
    two different splits.
    """
    path = Path(path)
    splits: dict[str, str] = {}
    current: str | None = None
    for line_no, raw_line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        header = _SPLIT_HEADER.match(line)
        if header:
            key = header.group(1).strip().lower().replace(" ", "_")
            if key not in CTSPINE1K_SPLIT_SECTIONS:
                raise ValueError(f"{path}:{line_no}: unknown split section {line!r}")
            current = CTSPINE1K_SPLIT_SECTIONS[key]
            continue
        if current is None:
            raise ValueError(f"{path}:{line_no}: entry {line!r} before any section header such as 'trainset:'")
        name = re.split(r"[/\\]", line)[-1]
        names = _NIFTI_NAME.findall(name)
        if names and "".join(names) != name:
            raise ValueError(f"{path}:{line_no}: cannot parse entry {line!r}")
        stems = [nifti_stem(n) for n in names] if names else [name]
        for stem in stems:
            stem = stem[: -len(mask_suffix)] if mask_suffix and stem.endswith(mask_suffix) else stem
            if splits.get(stem, current) != current:
                raise ValueError(f"{path}:{line_no}: {stem!r} is listed in both {splits[stem]} and {current}")
            splits[stem] = current
    return splits


class CTSpine1KSource(FolderSource):
    """CTSpine1K: ``<volumes>/<SUBSET>/<stem>.nii.gz`` + ``<labels>/<SUBSET>/<stem><mask_suffix>.nii.gz``.

    Args:
        root: dataset root (containing ``raw_data/`` or ``rawdata/``, or the ``volumes``/``labels`` or
            ``data``/``label`` folders directly).
        subset: keep only these subsets (first folder below the volume folder, e.g. ``"COLONOG"``;
            case-insensitive; a name or a list). ValueError if an asked subset is absent.
        use_split: read ``data_split.txt`` and set ``CaseRef.split``; cases not listed keep ``split=None``
            (logged) so that the caller can assign them.
        case_ids: see :class:`FolderSource`. Case ids are ``<SUBSET>_<stem>`` (folders joined by ``_``).
        label_scheme: see :class:`FolderSource`.
        mask_suffix: appended to the CT stem to name its mask.
        folder_pairs: (volume folder, label folder) relative paths tried in order.
        split_file: explicit ``data_split.txt``; by default searched in the root, ``raw_data/``, ``rawdata/``
            and next to the volume folder.
        ct_units: see :class:`FolderSource`.
    """

    name = "ctspine1k"

    def __init__(
        self,
        root: str | Path,
        subset: str | Sequence[str] | None = None,
        use_split: bool = False,
        case_ids: Sequence[str] | None = None,
        label_scheme: str = "ctspine1k",
        mask_suffix: str = "_seg",
        folder_pairs: Sequence[tuple[str, str]] = CTSPINE1K_FOLDER_PAIRS,
        split_file: str | Path | None = None,
        ct_units: str = CT_UNITS_HU,
    ) -> None:
        super().__init__(root, case_ids, label_scheme, ct_units)
        self.subsets = None if subset is None else [subset] if isinstance(subset, str) else list(subset)
        self.use_split = use_split
        self.mask_suffix = mask_suffix
        self.folder_pairs = [(str(v), str(lbl)) for v, lbl in folder_pairs]
        self.split_file = None if split_file is None else Path(split_file)

    def _folders(self) -> tuple[Path, Path]:
        for volume_dir, label_dir in self.folder_pairs:
            if (self.root / volume_dir).is_dir():
                return self.root / volume_dir, self.root / label_dir
        tried = ", ".join(str(self.root / v) for v, _ in self.folder_pairs)
        raise FileNotFoundError(f"{self.name}: no volume folder found; looked for {tried}")

    def _find_split_file(self, volume_dir: Path) -> Path:
        candidates = (
            [self.split_file]
            if self.split_file is not None
            else [
                self.root / CTSPINE1K_SPLIT_FILE,
                self.root / "raw_data" / CTSPINE1K_SPLIT_FILE,
                self.root / "rawdata" / CTSPINE1K_SPLIT_FILE,
                volume_dir.parent / CTSPINE1K_SPLIT_FILE,
            ]
        )
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{self.name}: use_split=True but no split file found; looked for {preview_list(candidates)}"
        )

    def _discover(self) -> list[CaseRef]:
        volume_dir, label_dir = self._folders()
        cts: dict[tuple[str, ...], Path] = {}
        for path in self._nifti_files(volume_dir):
            stem = nifti_stem(path)
            if self.mask_suffix and stem.endswith(self.mask_suffix):
                log.warning("%s: skipping mask-like file in the volume folder: %s", self.name, path)
                continue
            cts[(*path.relative_to(volume_dir).parent.parts, stem)] = path
        masks: dict[tuple[str, ...], Path] = {}
        if label_dir.is_dir():
            for path in self._nifti_files(label_dir):
                stem = nifti_stem(path)
                if not stem.endswith(self.mask_suffix):
                    log.warning("%s: ignoring %s (no %r suffix)", self.name, path, self.mask_suffix)
                    continue
                masks[(*path.relative_to(label_dir).parent.parts, stem[: -len(self.mask_suffix)])] = path
        refs = []
        for key in sorted(cts.keys() | masks.keys()):
            *folders, stem = key
            ct_path = cts.get(key, volume_dir.joinpath(*folders, f"{stem}.nii.gz"))
            suffix = nifti_suffix(ct_path)
            mask_path = masks.get(key, label_dir.joinpath(*folders, f"{stem}{self.mask_suffix}{suffix}"))
            problem = None
            if key not in masks:
                problem = f"CT without mask (expected {mask_path})"
            elif key not in cts:
                problem = f"mask without CT (expected {ct_path})"
            refs.append(CaseRef(safe_case_id(*key), ct_path, mask_path, None, problem))
        refs = self._filter_subsets(refs, volume_dir)
        require_complete(refs, self.name, f"{volume_dir} + {label_dir}")
        if self.use_split:
            refs = self._apply_split(refs, volume_dir)
        return refs

    def _keeps_unreadable(self, path: Path) -> bool:
        """With a subset filter: only entries in an asked subset's folder (or above the subset folders)."""
        if self.subsets is None:
            return True
        volume_dir, label_dir = self._folders()
        for folder in (volume_dir, label_dir):
            if path.is_relative_to(folder) and path != folder:
                return path.relative_to(folder).parts[0].lower() in {s.lower() for s in self.subsets}
        return True

    @staticmethod
    def _subset_of(ref: CaseRef, volume_dir: Path) -> str | None:
        """First folder below the volume folder (None for a CT directly in it)."""
        parts = ref.ct_path.relative_to(volume_dir).parts
        return parts[0] if len(parts) > 1 else None

    def _filter_subsets(self, refs: list[CaseRef], volume_dir: Path) -> list[CaseRef]:
        if self.subsets is None:
            return refs
        available = sorted({s for ref in refs if (s := self._subset_of(ref, volume_dir))})
        wanted = {s.lower() for s in self.subsets}
        missing = sorted(wanted - {s.lower() for s in available})
        if missing:
            raise ValueError(f"{self.name}: subset(s) {missing} not found under {volume_dir}; available: {available}")
        return [ref for ref in refs if (self._subset_of(ref, volume_dir) or "").lower() in wanted]

    def _apply_split(self, refs: list[CaseRef], volume_dir: Path) -> list[CaseRef]:
        split_path = self._find_split_file(volume_dir)
        splits = parse_ctspine1k_split(split_path, self.mask_suffix)
        out = [replace(ref, split=splits.get(nifti_stem(ref.ct_path))) for ref in refs]
        unlisted = [ref.case_id for ref in out if ref.split is None]
        if unlisted:
            log.warning(
                "%s: %d case(s) not listed in %s keep split=None: %s",
                self.name,
                len(unlisted),
                split_path,
                preview_list(unlisted),
            )
        return out
