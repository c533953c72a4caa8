"""Find CT + vertebra-mask pairs in the dataset layouts on disk and load them as canonical volumes.

Three sources share one interface (:class:`CaseSource`): ``list_cases()`` returns sorted :class:`CaseRef`
objects and ``load(ref)`` returns a :class:`~x2ct.data.volume.Volume` (canonical axes, project labels).

* :class:`CTSpine1KSource`: ``{raw_data|rawdata}/volumes/<SUBSET>/<stem>.nii.gz`` with
  ``{raw_data|rawdata}/labels/<SUBSET>/<stem>_seg.nii.gz``, or the mirror layout ``data/...`` + ``label/...``,
  optional subset filter and the official ``data_split.txt``.
* :class:`VerseSource`: VerSe 2019/2020 ``rawdata/sub-*/<key>_ct.nii.gz`` with
  ``derivatives/sub-*/<key>_seg-vert_msk.nii.gz``, directly under the root or under split folders.
* :class:`PairsSource`: any folder, a CT glob and a mask glob paired by the text their ``*`` matched.

Incomplete cases (a CT without its mask or a mask without its CT) are not dropped: they are listed (and
logged as a warning) as refs with ``problem`` set, and ``load`` raises :class:`CaseError` for them, so the
preparation pipeline records them as failed in its manifest. ``list_cases`` raises FileNotFoundError when
the root is missing or no complete pair is found, naming where it looked.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from x2ct.data.errors import CaseError
from x2ct.data.labels import LABEL_SCHEMES
from x2ct.data.nifti_io import NIFTI_SUFFIXES, load_ct_and_mask, nifti_stem
from x2ct.data.volume import Volume

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


def _nifti_suffix(path: Path) -> str:
    return next(s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s))


def _preview(items: Iterable[object]) -> str:
    items = [str(item) for item in items]
    more = f" ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


class CaseSource(ABC):
    """Base of the dataset sources: discovery, id checks, ``case_ids`` filter and loading.

    Args:
        root: dataset folder.
        case_ids: keep only these case ids (ValueError if one is not found); None keeps all.
        label_scheme: numbering of the masks (``"ctspine1k"`` or ``"totalsegmentator"``).
    """

    name: str = "source"

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
                    f"{self.name}: requested case ids not found under {self.root}: {_preview(missing)}; "
                    f"available: {_preview(seen)}"
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
                _preview(f"{ref.case_id} ({ref.problem})" for ref in incomplete),
            )
        return refs

    def load(self, ref: CaseRef) -> Volume:
        """Load one case as a canonical Volume with project labels; ``meta`` gains ``source`` and ``split``.
        Raises CaseError for incomplete or broken cases."""
        if ref.problem:
            raise CaseError(f"case {ref.case_id!r}: {ref.problem}")
        vol = load_ct_and_mask(ref.ct_path, ref.mask_path, case_id=ref.case_id, label_scheme=self.label_scheme)
        vol.meta.update(source=self.name, split=ref.split)
        return vol


def _require_complete(refs: list[CaseRef], name: str, where: str) -> list[CaseRef]:
    if not any(ref.problem is None for ref in refs):
        detail = f"; incomplete: {_preview(f'{r.case_id} ({r.problem})' for r in refs)}" if refs else ""
        raise FileNotFoundError(f"{name}: no CT + mask pair found in {where}{detail}")
    return refs


# ----------------------------------------------------------------------------------------------- CTSpine1K

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


class CTSpine1KSource(CaseSource):
    """CTSpine1K: ``<volumes>/<SUBSET>/<stem>.nii.gz`` + ``<labels>/<SUBSET>/<stem><mask_suffix>.nii.gz``.

    Args:
        root: dataset root (containing ``raw_data/`` or ``rawdata/``, or the ``volumes``/``labels`` or
            ``data``/``label`` folders directly).
        subset: keep only these subsets (first folder below the volume folder, e.g. ``"COLONOG"``;
            case-insensitive; a name or a list). ValueError if an asked subset is absent.
        use_split: read ``data_split.txt`` and set ``CaseRef.split``; cases not listed keep ``split=None``
            (logged) so that the caller can assign them.
        case_ids: see :class:`CaseSource`. Case ids are ``<SUBSET>_<stem>`` (folders joined by ``_``).
        label_scheme: see :class:`CaseSource`.
        mask_suffix: appended to the CT stem to name its mask.
        folder_pairs: (volume folder, label folder) relative paths tried in order.
        split_file: explicit ``data_split.txt``; by default searched in the root, ``raw_data/``, ``rawdata/``
            and next to the volume folder.
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
    ) -> None:
        super().__init__(root, case_ids, label_scheme)
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
            f"{self.name}: use_split=True but no split file found; looked for {_preview(candidates)}"
        )

    def _discover(self) -> list[CaseRef]:
        volume_dir, label_dir = self._folders()
        cts: dict[tuple[str, ...], Path] = {}
        for path in list_nifti_files(volume_dir):
            stem = nifti_stem(path)
            if self.mask_suffix and stem.endswith(self.mask_suffix):
                log.warning("%s: skipping mask-like file in the volume folder: %s", self.name, path)
                continue
            cts[(*path.relative_to(volume_dir).parent.parts, stem)] = path
        masks: dict[tuple[str, ...], Path] = {}
        if label_dir.is_dir():
            for path in list_nifti_files(label_dir):
                stem = nifti_stem(path)
                if not stem.endswith(self.mask_suffix):
                    log.warning("%s: ignoring %s (no %r suffix)", self.name, path, self.mask_suffix)
                    continue
                masks[(*path.relative_to(label_dir).parent.parts, stem[: -len(self.mask_suffix)])] = path
        refs = []
        for key in sorted(cts.keys() | masks.keys()):
            *folders, stem = key
            ct_path = cts.get(key, volume_dir.joinpath(*folders, f"{stem}.nii.gz"))
            suffix = _nifti_suffix(ct_path)
            mask_path = masks.get(key, label_dir.joinpath(*folders, f"{stem}{self.mask_suffix}{suffix}"))
            problem = None
            if key not in masks:
                problem = f"CT without mask (expected {mask_path})"
            elif key not in cts:
                problem = f"mask without CT (expected {ct_path})"
            refs.append(CaseRef(safe_case_id(*key), ct_path, mask_path, None, problem))
        refs = self._filter_subsets(refs, volume_dir)
        _require_complete(refs, self.name, f"{volume_dir} + {label_dir}")
        if self.use_split:
            refs = self._apply_split(refs, volume_dir)
        return refs

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
                _preview(unlisted),
            )
        return out


# ---------------------------------------------------------------------------------------------------- VerSe

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


class VerseSource(CaseSource):
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
    ) -> None:
        super().__init__(root, case_ids, label_scheme)
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
        for path in list_nifti_files(folder):
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
        return _require_complete(refs, self.name, f"{self.root} (rawdata/ + derivatives/)")


# ---------------------------------------------------------------------------------------------------- Pairs


@dataclass(frozen=True)
class _StemPattern:
    """A glob with exactly one ``*`` (``?`` = one character); matched against the last path components.
    A ``.nii.gz`` or ``.nii`` ending matches both compressions."""

    pattern: str
    regex: re.Pattern[str]
    n_parts: int

    @classmethod
    def compile(cls, pattern: str) -> _StemPattern:
        if pattern.count("*") != 1:
            raise ValueError(f"pattern {pattern!r} must contain exactly one '*' (the shared stem)")
        prefix, suffix = pattern.split("*")

        def translate(text: str) -> str:
            return "".join("[^/]" if ch == "?" else re.escape(ch) for ch in text)

        nifti_suffix = next((x for x in NIFTI_SUFFIXES if suffix.lower().endswith(x)), None)
        if nifti_suffix is None:
            tail = translate(suffix)
        else:  # ".nii.gz" and ".nii" match either compression
            tail = translate(suffix[: -len(nifti_suffix)]) + r"(?i:\.nii(?:\.gz)?)"
        regex = re.compile(f"{translate(prefix)}([^/]+){tail}")
        return cls(pattern, regex, pattern.count("/") + 1)

    @property
    def specificity(self) -> int:
        return len(self.pattern) - 1

    def match(self, rel_parts: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
        """(leading folders, stem) if the last ``n_parts`` path components match, else None."""
        if len(rel_parts) < self.n_parts:
            return None
        found = self.regex.fullmatch("/".join(rel_parts[-self.n_parts :]))
        return (rel_parts[: -self.n_parts], found.group(1)) if found else None


class PairsSource(CaseSource):
    """A folder of CT/mask NIfTI pairs found by two globs and paired by the text matched by their ``*``.

    Args:
        root: folder searched recursively.
        ct_pattern, mask_pattern: globs with exactly one ``*`` matched against file names (or, when they
            contain ``/``, against as many trailing path components: ``imagesTr/*.nii.gz`` +
            ``labelsTr/*.nii.gz``). Files pair when they share the stem and the folders above the matched
            part. A file matching both patterns belongs to the more specific (longer) one. A ``.nii.gz`` or
            ``.nii`` ending matches both compressions.
        case_ids, label_scheme: see :class:`CaseSource`. Case ids are the stem, prefixed by the folders
            above the matched part (joined by ``_``).
    """

    name = "pairs"

    def __init__(
        self,
        root: str | Path,
        ct_pattern: str = "*_ct.nii.gz",
        mask_pattern: str = "*_seg.nii.gz",
        case_ids: Sequence[str] | None = None,
        label_scheme: str = "ctspine1k",
    ) -> None:
        super().__init__(root, case_ids, label_scheme)
        self.ct_pattern = _StemPattern.compile(ct_pattern)
        self.mask_pattern = _StemPattern.compile(mask_pattern)
        if ct_pattern == mask_pattern:
            raise ValueError(f"ct_pattern and mask_pattern are the same: {ct_pattern!r}")

    def _classify(self, rel_parts: tuple[str, ...]) -> tuple[str, tuple[tuple[str, ...], str]] | None:
        as_ct, as_mask = self.ct_pattern.match(rel_parts), self.mask_pattern.match(rel_parts)
        if as_ct and as_mask:
            if self.ct_pattern.specificity == self.mask_pattern.specificity:
                raise ValueError(
                    f"{self.name}: {'/'.join(rel_parts)} matches both ct_pattern {self.ct_pattern.pattern!r} "
                    f"and mask_pattern {self.mask_pattern.pattern!r}; make one of them more specific"
                )
            return ("ct", as_ct) if self.ct_pattern.specificity > self.mask_pattern.specificity else ("mask", as_mask)
        if as_ct:
            return "ct", as_ct
        if as_mask:
            return "mask", as_mask
        return None

    def _expected_path(self, pattern: _StemPattern, key: tuple[str, ...]) -> Path:
        """Where the missing partner of a case would be (``?`` left unresolved)."""
        *folders, stem = key
        return self.root.joinpath(*folders, *pattern.pattern.replace("*", stem).split("/"))

    def _discover(self) -> list[CaseRef]:
        found: dict[str, dict[tuple[str, ...], Path]] = {"ct": {}, "mask": {}}
        for path in list_nifti_files(self.root):
            classified = self._classify(path.relative_to(self.root).parts)
            if classified is None:
                continue
            kind, (folders, stem) = classified
            key = (*folders, stem)
            if key in found[kind]:
                raise ValueError(f"{self.name}: two {kind} files share the stem {stem!r}: {found[kind][key]}, {path}")
            found[kind][key] = path
        where = f"{self.root} (ct_pattern {self.ct_pattern.pattern!r}, mask_pattern {self.mask_pattern.pattern!r})"
        if not found["ct"] and not found["mask"]:
            raise FileNotFoundError(f"{self.name}: no file matches the patterns in {where}")
        refs = []
        for key in sorted(found["ct"].keys() | found["mask"].keys()):
            ct_path, mask_path = found["ct"].get(key), found["mask"].get(key)
            if ct_path is not None and mask_path is not None:
                refs.append(CaseRef(safe_case_id(*key), ct_path, mask_path))
            elif ct_path is not None:
                expected = self._expected_path(self.mask_pattern, key)
                refs.append(
                    CaseRef(
                        safe_case_id(*key),
                        ct_path,
                        expected,
                        None,
                        f"CT without mask (no file matching {self.mask_pattern.pattern!r} with stem {key[-1]!r})",
                    )
                )
            else:
                assert mask_path is not None
                expected = self._expected_path(self.ct_pattern, key)
                refs.append(
                    CaseRef(
                        safe_case_id(*key),
                        expected,
                        mask_path,
                        None,
                        f"mask without CT (no file matching {self.ct_pattern.pattern!r} with stem {key[-1]!r})",
                    )
                )
        return _require_complete(refs, self.name, where)
