"""The preparation pipeline: cases of a source -> fitted volume -> DRR views -> one HDF5 triplet per case.

Outputs under ``out_dir`` (design.md section 4):
``<case_id>/ct_xray_data.h5``, ``train.txt`` and ``test.txt`` (case ids, one a line), ``manifest.csv`` (one row
per input case with its status and, on failure, the reason), and ``previews/<case_id>.png``.
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from x2ct.drr import DRRConfig, DRRRenderer, ViewSpec
from x2ct.errors import CaseError, InputNotFoundError, InvalidOptionError, UserError
from x2ct.io.hdf5 import lateral_key, validate_triplet, write_triplet
from x2ct.io.labels import level_names
from x2ct.io.nifti import save_volume_nifti
from x2ct.io.volume import Volume
from x2ct.preparation.fingerprint import fingerprint_attrs, settings_record, stale_reason
from x2ct.preparation.fit import VolumeFitConfig, fit_volume
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig, paper_preprocess, resize_xray
from x2ct.sources.base import CaseRef, CaseSource
from x2ct.utils.atomic import atomic_write_text
from x2ct.utils.output_paths import check_output_folder

log = logging.getLogger(__name__)

TRIPLET_NAME = "ct_xray_data.h5"
MANIFEST_NAME = "manifest.csv"
PREVIEW_DIR = "previews"
AP_VIEW = "xray1"
MANIFEST_FIELDS = (
    "case_id",
    "status",
    "reason",
    "split",
    "ct_path",
    "mask_path",
    "shape",
    "spacing_mm",
    "levels",
    "seconds",
    "ct_units",
)
STATUS_OK = "ok"
STATUS_EXISTS = "exists"
STATUS_FAILED = "failed"
REBUILT_PREFIX = "rebuilt: "  # manifest reason of an existing case rebuilt because its settings changed
LOGGED_CASE_IDS = 3  # case ids named per log line


@dataclass
class XraySettings:
    """How rendered DRRs become the stored uint8 X-rays.

    ``mode="aligned"`` keeps the detector aligned with the CT grid (resized to ``size`` only if the cube differs);
    ``mode="paper"`` runs the paper's OpenCV contour crop / pad / resize (``preprocess``).
    """

    mode: str = "aligned"
    size: int = 128
    preprocess: PaperPreprocessConfig | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("aligned", "paper"):
            raise InvalidOptionError(f"xray.mode must be 'aligned' or 'paper', got {self.mode!r}")
        self.size = _whole_number(self.size, "xray.size", minimum=1)
        if self.mode == "paper" and self.preprocess is None:
            self.preprocess = PaperPreprocessConfig(output_size=self.size)


@dataclass
class PrepareSettings:
    """Run-level options of ``x2ct-prepare`` (see conf/prepare.yaml)."""

    out_dir: Path
    lateral_angles: Sequence[float] = (90, 85, 80, 75)
    seed: int = 0
    workers: int = 2
    test_fraction: float = 0.2
    use_dataset_split: bool = False
    allow_failures: bool = False
    overwrite: bool = False
    save_nifti: bool = False
    n_previews: int = 4

    def __post_init__(self) -> None:
        """Checks every option (and that ``out_dir`` can be written) before any work starts."""
        self.out_dir = check_output_folder(self.out_dir, "out_dir")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, int | float):
            raise InvalidOptionError(f"split.test_fraction must be a number in [0, 1), got {self.test_fraction!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise InvalidOptionError(f"split.test_fraction must be in [0, 1), got {self.test_fraction}")
        self.workers = _whole_number(self.workers, "workers", minimum=1)
        self.n_previews = _whole_number(self.n_previews, "n_previews", minimum=0)
        self.seed = _whole_number(self.seed, "seed", minimum=0)
        if isinstance(self.lateral_angles, str | bytes) or not isinstance(self.lateral_angles, Sequence):
            raise InvalidOptionError(f"lateral_angles must be a list of degrees, got {self.lateral_angles!r}")
        if not self.lateral_angles:
            raise InvalidOptionError("lateral_angles is empty: at least one lateral view is needed")
        build_views(self.lateral_angles)  # every angle valid, no duplicates
        if not any(float(a) == 90.0 for a in self.lateral_angles):
            raise InvalidOptionError(
                f"lateral_angles must include 90 (the 'xray2' dataset), got {list(self.lateral_angles)}"
            )


@dataclass
class CaseResult:
    """One manifest row."""

    case_id: str
    status: str
    reason: str = ""
    split: str = ""
    ct_path: str = ""
    mask_path: str = ""
    shape: str = ""
    spacing_mm: str = ""
    levels: str = ""
    seconds: float = 0.0
    ct_units: str = ""  # how the source read the CT values: "hu", "hu_plus_1024->hu", "hu_unchecked" (meta)
    dataset_split: str | None = field(default=None, repr=False)


@dataclass
class PrepareSummary:
    """What a run did; ``failed`` lists (case_id, reason)."""

    out_dir: Path
    results: list[CaseResult]
    train_ids: list[str]
    test_ids: list[str]
    seconds: float

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.case_id, r.reason) for r in self.results if r.status == STATUS_FAILED]

    @property
    def n_ok(self) -> int:
        return sum(r.status in (STATUS_OK, STATUS_EXISTS) for r in self.results)


def build_views(lateral_angles: Sequence[float]) -> list[ViewSpec]:
    """The AP view (``xray1``, 0 degrees) followed by one lateral view per angle, named by the HDF5 schema.

    Raises InvalidOptionError naming ``lateral_angles`` for a value that is not a whole number of degrees in
    (0, 180) or for duplicates."""
    views = [ViewSpec(name=AP_VIEW, angle_deg=0.0, lateral=False)]
    for angle in lateral_angles:
        try:
            name = lateral_key(float(angle))
        except (TypeError, ValueError) as error:
            raise InvalidOptionError(f"lateral_angles: bad angle {angle!r}: {error}") from error
        views.append(ViewSpec(name=name, angle_deg=float(angle), lateral=True))
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"lateral_angles has duplicates: {list(lateral_angles)}")
    return views


def _whole_number(value: Any, option: str, minimum: int) -> int:
    """``value`` as an int when it is a whole number >= ``minimum``; else InvalidOptionError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < minimum:
        raise InvalidOptionError(f"{option} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def triplet_path(out_dir: Path, case_id: str) -> Path:
    return Path(out_dir) / case_id / TRIPLET_NAME


def file_record(
    source: CaseSource,
    fit: VolumeFitConfig,
    drr: DRRConfig,
    xray: XraySettings,
    settings: PrepareSettings,
    ref: CaseRef,
) -> dict[str, Any]:
    """The settings that shape the file of ``ref`` (see :mod:`x2ct.preparation.fingerprint`)."""
    return settings_record(
        fit=fit, drr=drr, xray=xray, lateral_angles=settings.lateral_angles, source=source.file_settings(ref)
    )


class CaseProcessor:
    """Turns one case reference into its HDF5 triplet (picklable, runs in worker processes)."""

    def __init__(
        self,
        source: CaseSource,
        fit: VolumeFitConfig,
        drr: DRRConfig,
        xray: XraySettings,
        settings: PrepareSettings,
        threads: int,
    ) -> None:
        self.source = source
        self.fit = fit
        self.drr = drr
        self.xray = xray
        self.settings = settings
        self.views = build_views(settings.lateral_angles)
        self.threads = threads
        self._renderer: DRRRenderer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_renderer"] = None
        return state

    @property
    def renderer(self) -> DRRRenderer:
        if self._renderer is None:
            self._renderer = DRRRenderer(self.drr)
        return self._renderer

    def __call__(self, ref: CaseRef, preview: bool = False) -> CaseResult:
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        result = CaseResult(
            case_id=ref.case_id,
            status=STATUS_OK,
            ct_path=str(ref.ct_path or ""),
            mask_path=str(ref.mask_path or ""),
            dataset_split=ref.split,
        )
        try:
            volume = fit_volume(self.source.load(ref), self.fit)
            images = self.render(volume)
            self.write(volume, images, file_record(self.source, self.fit, self.drr, self.xray, self.settings, ref))
            if preview:
                from x2ct.preparation.preview import save_case_preview

                save_case_preview(volume, images, self.settings.out_dir / PREVIEW_DIR / f"{ref.case_id}.png")
            result.shape = "x".join(str(n) for n in volume.shape)
            result.spacing_mm = "x".join(f"{s:.4g}" for s in volume.spacing)
            result.levels = " ".join(level_names(_present_levels(volume)))
            result.ct_units = str(volume.meta.get("ct_units", ""))
        except (CaseError, FileNotFoundError, OSError, ValueError) as err:
            result.status = STATUS_FAILED
            result.reason = f"{type(err).__name__}: {err}"
        except Exception as err:  # an unexpected bug: record it with its location, keep the batch going
            result.status = STATUS_FAILED
            where = traceback.extract_tb(err.__traceback__)[-1]
            result.reason = f"{type(err).__name__}: {err} (at {Path(where.filename).name}:{where.lineno})"
        result.seconds = round(time.perf_counter() - start, 3)
        return result

    def render(self, volume: Volume) -> dict[str, np.ndarray]:
        """DRRs of ``volume`` as uint8 images keyed by HDF5 dataset name."""
        hu = torch.from_numpy(np.ascontiguousarray(volume.hu, dtype=np.float32))
        line_integrals = self.renderer.render(
            hu, spacing=volume.spacing, isocenter_mm=volume.mask_centroid_mm(), views=self.views
        )
        rendered = self.renderer.to_uint8(line_integrals)
        images = {}
        for view, image in zip(self.views, rendered, strict=True):
            if self.xray.mode == "paper":
                images[view.name] = paper_preprocess(image, self.xray.preprocess)
            elif image.shape != (self.xray.size, self.xray.size):
                images[view.name] = resize_xray(image, self.xray.size)
            else:
                images[view.name] = image
        return images

    def write(self, volume: Volume, images: dict[str, np.ndarray], record: dict[str, Any]) -> None:
        """Write the triplet with its provenance attributes and the fingerprint of ``record``."""
        laterals = {v.angle_deg: images[v.name] for v in self.views if v.lateral}
        attrs = {
            "case_id": volume.case_id,
            "spacing_mm": list(volume.spacing),
            "affine": volume.affine,
            "isocenter_mm": volume.mask_centroid_mm(),
            "xray_mode": self.xray.mode,
            "drr": self.renderer.geometry_attrs(),
            "source": {k: v for k, v in volume.meta.items() if _is_simple(v)},
            **fingerprint_attrs(record),
        }
        path = triplet_path(self.settings.out_dir, volume.case_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_triplet(path, ct_hu=volume.hu, xray1=images[AP_VIEW], laterals=laterals, attrs=attrs)
        if self.settings.save_nifti:
            save_volume_nifti(volume, path.parent / "ct.nii.gz", what="ct")
            save_volume_nifti(volume, path.parent / "labels.nii.gz", what="labels")


def _is_simple(value: Any) -> bool:
    """True for values an HDF5 attribute stores as they are: a scalar or a list of scalars of one type."""
    scalars = (str, int, float, bool)
    if isinstance(value, scalars):
        return True
    if isinstance(value, list | tuple) and value:
        return all(isinstance(v, scalars) for v in value) and len({type(v) for v in value}) == 1
    return False


def _present_levels(volume: Volume) -> list[int]:
    if volume.labels is None:
        return []
    return [int(v) for v in np.unique(volume.labels) if v > 0]


def split_cases(
    results: Sequence[CaseResult], test_fraction: float, seed: int, use_dataset_split: bool
) -> tuple[list[str], list[str]]:
    """Train / test case ids among the finished cases.

    With ``use_dataset_split`` the dataset's own split is used (every finished case must have one). Otherwise a
    reproducible random split: the sorted ids are shuffled with ``seed`` and the first round(n * fraction) are test.
    """
    done = sorted((r for r in results if r.status != STATUS_FAILED), key=lambda r: r.case_id)
    if use_dataset_split:
        missing = [r.case_id for r in done if r.dataset_split not in ("train", "test")]
        if missing:
            raise ValueError(
                f"split.use_dataset_split=true but the source gives no split for {missing[:5]} ({len(missing)} cases)"
            )
        train = [r.case_id for r in done if r.dataset_split == "train"]
        test = [r.case_id for r in done if r.dataset_split == "test"]
        return train, test
    ids = [r.case_id for r in done]
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = round(len(ids) * test_fraction)
    test_set = {ids[i] for i in order[:n_test]}
    return [i for i in ids if i not in test_set], [i for i in ids if i in test_set]


def write_manifest(path: Path, results: Sequence[CaseResult]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for result in sorted(results, key=lambda r: r.case_id):
        writer.writerow(asdict(result))
    atomic_write_text(path, buffer.getvalue())


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _existing_result(ref: CaseRef, out_dir: Path, record: dict[str, Any]) -> CaseResult | str | None:
    """A finished case's manifest row; else None (no file, or an invalid leftover), or the reason why the file
    no longer matches the settings ``record`` (it is rebuilt)."""
    path = triplet_path(out_dir, ref.case_id)
    if not path.exists():
        return None
    try:
        validate_triplet(path)
        stale = stale_reason(path, record)
    except Exception as err:  # an invalid leftover is rebuilt, and the log says why
        log.warning("%s exists but is invalid (%s): rebuilding it", path, err)
        return None
    if stale is not None:
        return stale
    return CaseResult(
        case_id=ref.case_id,
        status=STATUS_EXISTS,
        ct_path=str(ref.ct_path or ""),
        mask_path=str(ref.mask_path or ""),
        dataset_split=ref.split,
    )


def list_source_cases(source: CaseSource) -> list[CaseRef]:
    """``source.list_cases()``; what it raises for the user's data or options (a missing or empty root, unknown
    case ids: FileNotFoundError or ValueError, see :meth:`CaseSource.list_cases`) becomes a one-line user error."""
    try:
        return source.list_cases()
    except UserError:
        raise
    except FileNotFoundError as error:
        raise InputNotFoundError(str(error)) from error
    except ValueError as error:
        raise InvalidOptionError(str(error)) from error


def run_prepare(
    source: CaseSource,
    fit: VolumeFitConfig,
    drr: DRRConfig,
    xray: XraySettings,
    settings: PrepareSettings,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare every case of ``source`` into ``settings.out_dir``; failed cases are recorded, not fatal."""
    start = time.perf_counter()
    out_dir = settings.out_dir
    refs = list_source_cases(source)
    ids = [r.case_id for r in refs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the source lists duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    if settings.use_dataset_split:
        # a case that will fail anyway (unpaired, unreadable) needs no split: it gets its manifest row
        unsplit = [r.case_id for r in refs if r.problem is None and r.split not in ("train", "test")]
        if unsplit:
            raise InvalidOptionError(
                f"split.use_dataset_split=true but the source gives no split for {unsplit[:5]} ({len(unsplit)} cases)"
            )
    out_dir.mkdir(parents=True, exist_ok=True)

    results: list[CaseResult] = []
    todo: list[CaseRef] = []
    rebuilt: dict[str, str] = {}  # case id -> why its existing file is rebuilt
    for ref in refs:
        record = file_record(source, fit, drr, xray, settings, ref)
        existing = None if settings.overwrite else _existing_result(ref, out_dir, record)
        if isinstance(existing, CaseResult):
            results.append(existing)
            continue
        if isinstance(existing, str):
            rebuilt[ref.case_id] = existing
        todo.append(ref)
    _log_rebuilds(rebuilt)
    preview_ids = {r.case_id for r in todo[: settings.n_previews]}
    log.info(
        "%d cases: %d to prepare, %d already done, %d workers -> %s",
        len(refs),
        len(todo),
        len(results),
        settings.workers,
        out_dir,
    )

    workers = min(settings.workers, max(len(todo), 1))
    processor = CaseProcessor(source, fit, drr, xray, settings, threads=max(1, torch.get_num_threads() // workers))
    bar = tqdm(total=len(todo), desc="prepare", unit="case", disable=not progress)
    if workers == 1:
        for ref in todo:
            results.append(processor(ref, ref.case_id in preview_ids))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(processor, ref, ref.case_id in preview_ids) for ref in todo]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    bar.close()
    for result in results:
        if result.case_id in rebuilt and result.status == STATUS_OK:
            result.reason = REBUILT_PREFIX + rebuilt[result.case_id]

    train_ids, test_ids = split_cases(results, settings.test_fraction, settings.seed, settings.use_dataset_split)
    split_of = {i: "train" for i in train_ids} | {i: "test" for i in test_ids}
    for result in results:
        result.split = split_of.get(result.case_id, "")
    atomic_write_text(out_dir / "train.txt", "".join(f"{i}\n" for i in train_ids))
    atomic_write_text(out_dir / "test.txt", "".join(f"{i}\n" for i in test_ids))
    write_manifest(out_dir / MANIFEST_NAME, results)
    return PrepareSummary(
        out_dir=out_dir,
        results=results,
        train_ids=train_ids,
        test_ids=test_ids,
        seconds=time.perf_counter() - start,
    )


def _log_rebuilds(rebuilt: dict[str, str]) -> None:
    """One warning per distinct reason, with the number of cases and the first few ids."""
    by_reason: dict[str, list[str]] = {}
    for case_id, reason in rebuilt.items():
        by_reason.setdefault(reason, []).append(case_id)
    for reason, case_ids in by_reason.items():
        shown = ", ".join(case_ids[:LOGGED_CASE_IDS]) + (" ..." if len(case_ids) > LOGGED_CASE_IDS else "")
        log.warning("rebuilding %d existing case(s) (%s): %s", len(case_ids), shown, reason)


def format_summary(summary: PrepareSummary) -> str:
    """A human-readable end-of-run report listing every failure."""
    counts = {s: sum(r.status == s for r in summary.results) for s in (STATUS_OK, STATUS_EXISTS, STATUS_FAILED)}
    lines = [
        f"x2ct-prepare: {counts[STATUS_OK]} prepared, {counts[STATUS_EXISTS]} already done, "
        f"{counts[STATUS_FAILED]} failed in {summary.seconds:.1f} s -> {summary.out_dir}",
        f"  split: {len(summary.train_ids)} train, {len(summary.test_ids)} test "
        f"(train.txt, test.txt); manifest: {summary.out_dir / MANIFEST_NAME}",
    ]
    n_rebuilt = sum(r.reason.startswith(REBUILT_PREFIX) for r in summary.results)
    if n_rebuilt:
        lines.append(f"  {n_rebuilt} existing case(s) rebuilt because their settings changed (see the manifest)")
    for case_id, reason in summary.failed:
        lines.append(f"  FAILED {case_id}: {reason}")
    return "\n".join(lines)
