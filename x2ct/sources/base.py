"""The one data-source abstraction: a :class:`CaseSource` lists :class:`CaseRef` cases and loads each as a
canonical :class:`~x2ct.io.volume.Volume` (axes D,H,W = I,P,L; HU; project labels).

:class:`FolderSource` is the base of the sources that read CT + vertebra-mask files from a dataset folder
(CTSpine1K, VerSe, pairs): discovery, id checks, the ``case_ids`` filter and loading. Incomplete cases (a CT
without its mask or a mask without its CT) are not dropped: they are listed (and logged as a warning) as refs
with ``problem`` set, and ``load`` raises :class:`CaseError` for them, so the preparation pipeline records them
as failed in its manifest. The same holds for what cannot be read below the root (a folder without permission,
a symlink loop, a broken folder symlink): each becomes a ref ``unreadable_<path>`` with its reason. Folder
symlinks are followed (once per folder). ``list_cases`` raises FileNotFoundError when the root is missing or no
complete pair is found, naming where it looked.

``load`` also guards against plausible-looking wrong data: CT values that are not HU
(:mod:`x2ct.io.ct_units`, option ``ct_units``), a mask that covers no bone, and an implausible voxel or vertebra
size (:mod:`x2ct.sources.plausibility`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from x2ct.errors import CaseError, InvalidOptionError
from x2ct.io.ct_units import CT_UNITS, CT_UNITS_HU, to_hu
from x2ct.io.labels import LABEL_SCHEMES
from x2ct.io.nifti import NIFTI_SUFFIXES, load_ct_and_mask
from x2ct.io.volume import Volume
from x2ct.sources.plausibility import check_case_geometry

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "test")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LISTED = 10
UNREADABLE_PREFIX = "unreadable"  # case ids of entries below a root that cannot be read start with it


@dataclass
class CaseRef:
    """One input case.

    Attributes:
        case_id: unique, filesystem-safe identifier.
        ct_path: CT NIfTI file (for a mask without CT: where the CT was expected); None for generated cases.
        mask_path: vertebra mask NIfTI file (for a CT without mask: where the mask was expected); None for
            generated cases.
        split: ``"train"``, ``"test"`` or None (no split given by the dataset).
        problem: why the case cannot be loaded (None for a complete pair); ``load`` raises it as CaseError.
    """

    case_id: str
    ct_path: Path | None
    mask_path: Path | None
    split: str | None = None
    problem: str | None = None


def safe_case_id(*parts: str) -> str:
    """Join ``parts`` with ``_`` and replace every character outside ``[A-Za-z0-9._-]`` by ``_``."""
    joined = "_".join(p for p in parts if p)
    safe = _UNSAFE_ID_CHARS.sub("_", joined).strip("_")
    if not safe or safe in {".", ".."}:
        raise ValueError(f"cannot build a case id from {parts!r}")
    return safe


@dataclass(frozen=True)
class UnreadableEntry:
    """Something below a dataset root that cannot be read (it may hold cases); it becomes a failing case."""

    path: Path
    reason: str


def _symlink_problem(path: Path) -> str:
    """Why the symlink ``path`` cannot be followed: a loop or a missing target."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop"
        return f"broken symlink (target {os.readlink(path)} does not exist)"
    return "symlink"


def _folder_key(path: Path) -> tuple[int, int]:
    """Identity of the real folder behind ``path`` (device, inode)."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def scan_nifti_files(folder: Path) -> tuple[list[Path], list[UnreadableEntry]]:
    """All ``.nii``/``.nii.gz`` files below ``folder`` (recursive, sorted, hidden names skipped) and what could
    not be read there.

    Folder symlinks are followed, each real folder once: a symlink back to a folder already listed (a loop) is
    an unreadable entry, like a folder that cannot be listed (permission) and a symlink that cannot be followed
    (broken or looping; it may have been a folder). A NIfTI-named symlink that cannot be followed is listed as
    a file, so it pairs with its partner and loading the case names the problem.
    """
    folder = Path(folder)
    files: list[Path] = []
    unreadable: list[UnreadableEntry] = []
    visited = {_folder_key(folder)}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as err:
            unreadable.append(UnreadableEntry(current, f"cannot list the folder ({err.strerror or err})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_nifti = entry.name.lower().endswith(NIFTI_SUFFIXES)
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
                key = _folder_key(path) if is_dir else None
            except OSError as err:
                if is_nifti and entry.is_symlink():
                    files.append(path)  # loading the case says why it cannot be followed
                else:
                    unreadable.append(UnreadableEntry(path, f"cannot read it ({err.strerror or err})"))
                continue
            if is_dir:
                if key in visited:
                    target = os.path.realpath(path)
                    unreadable.append(UnreadableEntry(path, f"symlink loop: it leads back to {target}, already listed"))
                else:
                    visited.add(key)
                    pending.append(path)
            elif is_file and is_nifti:
                files.append(path)
            elif entry.is_symlink():
                if is_nifti:
                    files.append(path)
                else:
                    unreadable.append(UnreadableEntry(path, _symlink_problem(path)))
    return sorted(files), unreadable


def nifti_suffix(path: Path) -> str:
    return next(s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s))


def preview_list(items: Iterable[object]) -> str:
    items = [str(item) for item in items]
    more = f" ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


class CaseSource(ABC):
    """A source of input cases for ``x2ct-prepare``: ``list_cases()`` then ``load(ref)`` for each.

    Subclasses: :class:`FolderSource` (dataset folders) and :class:`~x2ct.sources.phantom.PhantomSource`.
    """

    name: str = "source"

    @abstractmethod
    def list_cases(self) -> list[CaseRef]:
        """Sorted case refs; raises FileNotFoundError/ValueError when nothing usable is found."""

    @abstractmethod
    def load(self, ref: CaseRef) -> Volume:
        """One case as a canonical Volume (HU, project labels); raises CaseError for a broken case."""

    def file_settings(self, ref: CaseRef) -> dict[str, Any]:
        """JSON-able settings of this source that shape the prepared file of ``ref`` (part of its fingerprint,
        see :mod:`x2ct.preparation.fingerprint`): a change makes ``x2ct-prepare`` rebuild the case."""
        return {"source": self.name}


class FolderSource(CaseSource):
    """Base of the dataset-folder sources: discovery, id checks, ``case_ids`` filter and loading.

    Args:
        root: dataset folder.
        case_ids: keep only these case ids (ValueError if one is not found); None keeps all.
        label_scheme: numbering of the masks (``"ctspine1k"`` or ``"totalsegmentator"``).
        ct_units: how the CT values are stored (:data:`~x2ct.io.ct_units.CT_UNITS`): ``"hu"`` (checked),
            ``"hu_plus_1024"`` (converted), ``"auto"`` (either, decided per case) or ``"hu_unchecked"``.
    """

    def __init__(
        self,
        root: str | Path,
        case_ids: Sequence[str] | None = None,
        label_scheme: str = "ctspine1k",
        ct_units: str = CT_UNITS_HU,
    ) -> None:
        if label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"unknown label_scheme {label_scheme!r}; expected one of {LABEL_SCHEMES}")
        if isinstance(case_ids, str):
            raise ValueError(f"case_ids must be a list of ids, got the string {case_ids!r}")
        if ct_units not in CT_UNITS:
            raise InvalidOptionError(f"source.ct_units must be one of {', '.join(CT_UNITS)}, got {ct_units!r}")
        self.root = Path(root).expanduser()
        self.case_ids = None if case_ids is None else [str(c) for c in case_ids]
        self.label_scheme = label_scheme
        self.ct_units = ct_units
        self._unreadable: list[UnreadableEntry] = []

    @abstractmethod
    def _discover(self) -> list[CaseRef]:
        """All cases under the root, complete or not (unsorted); list folders with :meth:`_nifti_files`."""

    def _nifti_files(self, folder: Path) -> list[Path]:
        """The NIfTI files below ``folder``; what cannot be read there is kept for :meth:`list_cases`."""
        files, unreadable = scan_nifti_files(folder)
        self._unreadable.extend(unreadable)
        return files

    def _keeps_unreadable(self, path: Path) -> bool:
        """Whether an unreadable entry at ``path`` may hold cases this source is asked for (all by default)."""
        return True

    def _unreadable_refs(self) -> list[CaseRef]:
        refs = []
        for entry in self._unreadable:
            if self._keeps_unreadable(entry.path):
                case_id = safe_case_id(UNREADABLE_PREFIX, self._relative(entry.path) or "")
                refs.append(CaseRef(case_id, entry.path, None, None, f"cannot read {entry.path}: {entry.reason}"))
        return refs

    def list_cases(self) -> list[CaseRef]:
        """Sorted case refs (by id). Raises FileNotFoundError (root missing, nothing found) or ValueError
        (duplicate ids, unknown requested ids)."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name} root folder not found: {self.root}")
        self._unreadable = []
        try:
            discovered = self._discover()
        except FileNotFoundError as err:
            if not self._unreadable:
                raise
            unread = preview_list(f"{e.path} ({e.reason})" for e in self._unreadable)
            raise FileNotFoundError(f"{err}; could not read: {unread}") from err
        refs = sorted(discovered + self._unreadable_refs(), key=lambda ref: ref.case_id)
        seen: dict[str, CaseRef] = {}
        for ref in refs:
            if ref.case_id in seen:
                raise ValueError(
                    f"{self.name}: case id {ref.case_id!r} is not unique ({seen[ref.case_id].ct_path} and "
                    f"{ref.ct_path})"
                )
            seen[ref.case_id] = ref
        if self.case_ids is not None:
            missing = [c for c in self.case_ids if c not in seen]
            if missing:
                unread = self._unreadable and f"; could not read: {preview_list(e.path for e in self._unreadable)}"
                raise ValueError(
                    f"{self.name}: requested case ids not found under {self.root}: {preview_list(missing)}; "
                    f"available: {preview_list(seen)}{unread or ''}"
                )
            wanted = set(self.case_ids)
            refs = [ref for ref in refs if ref.case_id in wanted]
        incomplete = [ref for ref in refs if ref.problem]
        if incomplete:
            log.warning(
                "%s: %d incomplete case(s) under %s will fail on load: %s",
                self.name,
                len(incomplete),
                self.root,
                preview_list(f"{ref.case_id} ({ref.problem})" for ref in incomplete),
            )
        return refs

    def file_settings(self, ref: CaseRef) -> dict[str, Any]:
        """The source name, the label scheme and the case's file names relative to the root (moving the whole
        dataset folder does not make its cases stale)."""
        return {
            "source": self.name,
            "label_scheme": self.label_scheme,
            "ct_units": self.ct_units,
            "ct_file": self._relative(ref.ct_path),
            "mask_file": self._relative(ref.mask_path),
        }

    def _relative(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def load(self, ref: CaseRef) -> Volume:
        """Load one case as a canonical Volume in HU with project labels; ``meta`` gains ``source``, ``split``,
        ``ct_units`` (``"hu"``, ``"hu_plus_1024->hu"`` or ``"hu_unchecked"``) and, when checked, the measured
        ``ct_dark_level_hu`` and ``ct_bone_level_hu``. Raises CaseError for incomplete or broken cases, CT values
        that are not HU (see ``ct_units``), a mask that covers no bone, or an implausible voxel or vertebra size."""
        if ref.problem:
            raise CaseError(f"case {ref.case_id!r}: {ref.problem}")
        vol = load_ct_and_mask(ref.ct_path, ref.mask_path, case_id=ref.case_id, label_scheme=self.label_scheme)
        check_case_geometry(vol, str(ref.ct_path))
        vol.hu, units, stats = to_hu(vol.hu, vol.labels, self.ct_units, str(ref.ct_path))
        vol.meta.update(source=self.name, split=ref.split, ct_units=units)
        if stats is not None:
            vol.meta.update(ct_dark_level_hu=round(stats.dark_level, 1), ct_bone_level_hu=round(stats.bone_level, 1))
        return vol


def require_complete(refs: list[CaseRef], name: str, where: str) -> list[CaseRef]:
    if not any(ref.problem is None for ref in refs):
        detail = f"; incomplete: {preview_list(f'{r.case_id} ({r.problem})' for r in refs)}" if refs else ""
        raise FileNotFoundError(f"{name}: no CT + mask pair found in {where}{detail}")
    return refs
