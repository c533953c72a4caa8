"""The one data-source abstraction: a :class:`CaseSource` lists :class:`CaseRef` cases and loads each as a
canonical :class:`~x2ct.io.volume.Volume` (axes D,H,W = I,P,L; HU; project labels).

:class:`FolderSource` is the base of the sources that read CT + vertebra-mask files from a dataset folder
(CTSpine1K, VerSe, pairs): discovery, id checks, the ``case_ids`` filter and loading. Incomplete cases (a CT
without its mask or a mask without its CT) are not dropped: they are listed (and logged as a warning) as refs
with ``problem`` set, and ``load`` raises :class:`CaseError` for them, so the preparation pipeline records them
as failed in its manifest. ``list_cases`` raises FileNotFoundError when the root is missing or no complete pair
is found, naming where it looked.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from x2ct.errors import CaseError
from x2ct.io.labels import LABEL_SCHEMES
from x2ct.io.nifti import NIFTI_SUFFIXES, load_ct_and_mask
from x2ct.io.volume import Volume

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "test")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LISTED = 10


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


def list_nifti_files(folder: Path) -> list[Path]:
    """All ``.nii``/``.nii.gz`` files below ``folder`` (recursive, sorted), skipping hidden names."""
    found = []
    for path in folder.rglob("*"):
        rel_parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel_parts) or not path.is_file():
            continue
        if path.name.lower().endswith(NIFTI_SUFFIXES):
            found.append(path)
    return sorted(found)


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
    """

    def __init__(
        self, root: str | Path, case_ids: Sequence[str] | None = None, label_scheme: str = "ctspine1k"
    ) -> None:
        if label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"unknown label_scheme {label_scheme!r}; expected one of {LABEL_SCHEMES}")
        if isinstance(case_ids, str):
            raise ValueError(f"case_ids must be a list of ids, got the string {case_ids!r}")
        self.root = Path(root).expanduser()
        self.case_ids = None if case_ids is None else [str(c) for c in case_ids]
        self.label_scheme = label_scheme

    @abstractmethod
    def _discover(self) -> list[CaseRef]:
        """All cases under the root, complete or not (unsorted)."""

    def list_cases(self) -> list[CaseRef]:
        """Sorted case refs (by id). Raises FileNotFoundError (root missing, nothing found) or ValueError
        (duplicate ids, unknown requested ids)."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name} root folder not found: {self.root}")
        refs = sorted(self._discover(), key=lambda ref: ref.case_id)
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
                raise ValueError(
                    f"{self.name}: requested case ids not found under {self.root}: {preview_list(missing)}; "
                    f"available: {preview_list(seen)}"
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
        """Load one case as a canonical Volume with project labels; ``meta`` gains ``source`` and ``split``.
        Raises CaseError for incomplete or broken cases."""
        if ref.problem:
            raise CaseError(f"case {ref.case_id!r}: {ref.problem}")
        vol = load_ct_and_mask(ref.ct_path, ref.mask_path, case_id=ref.case_id, label_scheme=self.label_scheme)
        vol.meta.update(source=self.name, split=ref.split)
        return vol


def require_complete(refs: list[CaseRef], name: str, where: str) -> list[CaseRef]:
    if not any(ref.problem is None for ref in refs):
        detail = f"; incomplete: {preview_list(f'{r.case_id} ({r.problem})' for r in refs)}" if refs else ""
        raise FileNotFoundError(f"{name}: no CT + mask pair found in {where}{detail}")
    return refs
