"""VerSe 2019/2020: ``rawdata/sub-*/<key>_ct.nii.gz`` with ``derivatives/sub-*/<key>_seg-vert_msk.nii.gz``,
directly under the root or under split folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from x2ct.io.ct_units import CT_UNITS_HU
from x2ct.io.nifti import nifti_stem
from x2ct.sources.base import CaseRef, FolderSource, require_complete, safe_case_id

VERSE_CT_SUFFIX = "_ct"
VERSE_MASK_SUFFIX = "_seg-vert_msk"


def verse_split_from_folder(name: str) -> str | None:
    """Split of a VerSe release folder: names containing "train" -> "train"; "valid" or "test" -> "test";
    anything else -> None."""
    lowered = name.lower()
    if "train" in lowered:
        return "train"
    if "valid" in lowered or "test" in lowered:
        return "test"
    return None


class VerseSource(FolderSource):
    """VerSe 2019/2020: ``rawdata/**/<key>_ct.nii.gz`` + ``derivatives/**/<key>_seg-vert_msk.nii.gz``.

    The root either contains ``rawdata/`` and ``derivatives/`` directly (split None) or split folders that
    each contain them (``01_training``, ``02_validation``, ``dataset-verse19test``, ...); the split is then
    taken from the folder name (:func:`verse_split_from_folder`). Case ids are the ``<key>``
    (e.g. ``sub-gl003_dir-ax``). Masks are paired with CTs by key, wherever they lie below derivatives/.
    """

    name = "verse"

    def __init__(
        self,
        root: str | Path,
        case_ids: Sequence[str] | None = None,
        label_scheme: str = "ctspine1k",
        ct_suffix: str = VERSE_CT_SUFFIX,
        mask_suffix: str = VERSE_MASK_SUFFIX,
        ct_units: str = CT_UNITS_HU,
    ) -> None:
        super().__init__(root, case_ids, label_scheme, ct_units)
        self.ct_suffix = ct_suffix
        self.mask_suffix = mask_suffix

    def _release_folders(self) -> list[tuple[Path, str | None]]:
        def has_data(folder: Path) -> bool:
            return (folder / "rawdata").is_dir() or (folder / "derivatives").is_dir()

        if has_data(self.root):
            return [(self.root, None)]
        folders = [
            (d, verse_split_from_folder(d.name)) for d in sorted(self.root.iterdir()) if d.is_dir() and has_data(d)
        ]
        if not folders:
            raise FileNotFoundError(
                f"{self.name}: no rawdata/ or derivatives/ folder in {self.root} or in its sub-folders"
            )
        return folders

    def _by_key(self, folder: Path, suffix: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if not folder.is_dir():
            return found
        for path in self._nifti_files(folder):
            stem = nifti_stem(path)
            if stem.endswith(suffix):
                key = stem[: -len(suffix)]
                if key in found:
                    raise ValueError(f"{self.name}: two files for {key!r}: {found[key]} and {path}")
                found[key] = path
        return found

    def _discover(self) -> list[CaseRef]:
        refs = []
        for folder, split in self._release_folders():
            cts = self._by_key(folder / "rawdata", self.ct_suffix)
            masks = self._by_key(folder / "derivatives", self.mask_suffix)
            for key in sorted(cts.keys() | masks.keys()):
                subject = key.split("_")[0]
                ct_path = cts.get(key, folder / "rawdata" / subject / f"{key}{self.ct_suffix}.nii.gz")
                mask_path = masks.get(key, folder / "derivatives" / subject / f"{key}{self.mask_suffix}.nii.gz")
                problem = None
                if key not in masks:
                    problem = f"CT without mask (expected {mask_path})"
                elif key not in cts:
                    problem = f"mask without CT (expected {ct_path})"
                refs.append(CaseRef(safe_case_id(key), ct_path, mask_path, split, problem))
        return require_complete(refs, self.name, f"{self.root} (rawdata/ + derivatives/)")
