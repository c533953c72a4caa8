"""Any folder of CT + mask NIfTI pairs: a CT glob and a mask glob, paired by the text their ``*`` matched."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from x2ct.io.ct_units import CT_UNITS_HU
from x2ct.io.nifti import NIFTI_SUFFIXES
from x2ct.sources.base import CaseRef, FolderSource, require_complete, safe_case_id


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


class PairsSource(FolderSource):
    """A folder of CT/mask NIfTI pairs found by two globs and paired by the text matched by their ``*``.

    Args:
        root: folder searched recursively.
        ct_pattern, mask_pattern: globs with exactly one ``*`` matched against file names (or, when they
            contain ``/``, against as many trailing path components: ``imagesTr/*.nii.gz`` +
            ``labelsTr/*.nii.gz``). Files pair when they share the stem and the folders above the matched
            part. A file matching both patterns belongs to the more specific (longer) one. A ``.nii.gz`` or
            ``.nii`` ending matches both compressions.
        case_ids, label_scheme, ct_units: see :class:`FolderSource`. Case ids are the stem, prefixed by the folders
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
        ct_units: str = CT_UNITS_HU,
    ) -> None:
        super().__init__(root, case_ids, label_scheme, ct_units)
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
        for path in self._nifti_files(self.root):
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
        return require_complete(refs, self.name, where)
