"""Write the project notebooks from the cell sources below (the committed .ipynb files are this script's output).

    .venv/bin/python notebooks/build_notebooks.py            # rewrite notebooks/*.ipynb
    .venv/bin/python notebooks/build_notebooks.py --check    # exit 1 if a committed notebook differs

Edit the cells here, not in Jupyter, so that the notebooks stay reviewable as Python and carry no outputs.
Cell ids are fixed (``<notebook>-<index>``), so the same source always gives the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (x2ct .venv)", "language": "python"}
NBFORMAT_MINOR = 5  # cell ids exist from nbformat 4.5 on

# ------------------------------------------------------------------------------------------ 01 data pipeline

DATA_CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# x2ct data pipeline: phantom -> cube -> DRRs -> HDF5

This notebook walks through what `x2ct-prepare` does to one case, step by step, and then runs the real pipeline
on a few phantoms:

1. make a procedural spine **phantom** (a CT in Hounsfield units with vertebra labels) and look at it in the
   project's **canonical axes**;
2. **fit** it into the network's cube (crop to the spine, resample, centre);
3. render the two **X-rays** (AP and lateral) with our DRR projector, in the physical and the 3D Slicer look,
   and check that they line up with the CT;
4. render a **lateral view at 75 degrees** (the paper's angle study);
5. run the **pipeline** (`x2ct-prepare`) on a few phantoms, open one **HDF5 triplet** and read the **manifest**.

Everything runs offline on a CPU in seconds. Two environment variables set the size and the output folder:
`X2CT_NB_CUBE` (cube edge in voxels, default 128 as in the paper; the tests use 32) and `X2CT_NB_OUT`
(default: a new temporary folder).""",
    ),
    (
        "code",
        """import csv
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from IPython.display import Image, Markdown, display

from x2ct.config_dir import CONFIG_DIR
from x2ct.drr import DRRConfig, DRRRenderer
from x2ct.preparation.fit import VolumeFitConfig, fit_volume
from x2ct.io.hdf5 import HU_OFFSET, read_triplet
from x2ct.io.labels import level_names
from x2ct.phantom import make_phantom
from x2ct.preparation.pipeline import MANIFEST_NAME, PREVIEW_DIR, TRIPLET_NAME, build_views
from x2ct.prepare import prepare_from_config
from x2ct.viz.figures import DISPLAY_HU_WINDOW, mean_projections

%matplotlib inline

# Size knob: the cube edge in voxels. The field of view stays the paper's 128 mm, so the voxel size is 128 / CUBE mm.
CUBE = int(os.environ.get("X2CT_NB_CUBE", "128"))
FOV_MM = 128.0
MIN_CUBE = 16
if CUBE < MIN_CUBE:
    raise ValueError(f"X2CT_NB_CUBE must be an integer >= {MIN_CUBE}, got {CUBE}")
SPACING_MM = FOV_MM / CUBE
# Output folder of the pipeline section (a fresh temporary folder unless X2CT_NB_OUT is set).
OUT_DIR = Path(os.environ.get("X2CT_NB_OUT") or tempfile.mkdtemp(prefix="x2ct_notebook_"))
N_CASES = int(os.environ.get("X2CT_NB_CASES", "4"))  # phantoms prepared by the pipeline section
PHANTOM_SEED = 0
CT_WINDOW_HU = DISPLAY_HU_WINDOW  # x2ct's display window of CT slices (-400, 1200) HU: soft tissue grey, bone white
LATERAL_STUDY_ANGLE = 75.0  # the most oblique lateral view of the paper's angle study
MAX_SHIFT_PX = 3  # the alignment check searches shifts of up to this many pixels
print(f"cube {CUBE}^3 at {SPACING_MM:g} mm ({FOV_MM:g} mm field of view); outputs -> {OUT_DIR}")""",
    ),
    (
        "md",
        """## 1. A phantom in canonical axes

Every volume in x2ct, whatever file it came from, is reoriented to one array order **(D, H, W)**:

| axis | direction | index 0 is |
|---|---|---|
| D (axis 0) | cranio-caudal | the most **superior** slice (head end) |
| H (axis 1) | anterior-posterior | the most **anterior** row (belly side) |
| W (axis 2) | right-left | the patient's **right** |

In nibabel's axis codes this is `("I", "P", "L")` (the direction in which each index grows). Shown as images with
row 0 at the top, a coronal slice `ct[:, h, :]` is in **radiological display** (head up, the patient's right on the
viewer's left), and a sagittal slice `ct[:, :, w]` has the head up and anterior on the left. The AP X-ray lines up
with `ct[r, :, c]`, the lateral one with `ct[r, c, :]`.

`make_phantom(seed)` draws a randomized thoraco-lumbar spine (levels, curvature, scoliosis, ribs, fat, bowel gas,
noise) inside a torso; the same seed always gives the same case.""",
    ),
    (
        "code",
        """def show_slices(hu, spacing, labels=None, title="", window=CT_WINDOW_HU):
    \"\"\"Coronal, sagittal and axial slices through the mask centroid of a (D, H, W) HU volume, in millimetres,
    with the anatomical directions on the axes; the vertebra mask outline in yellow when labels are given.\"\"\"
    centre = (
        np.argwhere(labels > 0).mean(axis=0).round().astype(int)
        if labels is not None
        else np.asarray(hu.shape) // 2
    )
    d, h, w = (int(i) for i in centre)
    sd, sh, sw = spacing
    n_d, n_h, n_w = hu.shape
    panels = [
        ("coronal  ct[:, h, :]", hu[:, h, :], None if labels is None else labels[:, h, :],
         (0, n_w * sw, n_d * sd, 0), "W: patient's right -> left (mm)", "D: superior -> inferior (mm)", "RL", "SI"),
        ("sagittal  ct[:, :, w]", hu[:, :, w], None if labels is None else labels[:, :, w],
         (0, n_h * sh, n_d * sd, 0), "H: anterior -> posterior (mm)", "D: superior -> inferior (mm)", "AP", "SI"),
        ("axial  ct[d, :, :]", hu[d, :, :], None if labels is None else labels[d, :, :],
         (0, n_w * sw, n_h * sh, 0), "W: patient's right -> left (mm)", "H: anterior -> posterior (mm)", "RL", "AP"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, (name, image, mask, extent, xlabel, ylabel, x_ends, y_ends) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], extent=extent, interpolation="nearest")
        if mask is not None and np.any(mask > 0):
            ax.contour(mask > 0, levels=[0.5], colors="yellow", linewidths=0.6,
                       extent=(extent[0], extent[1], extent[3], extent[2]), origin="upper")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ends = ((0.02, 0.5, x_ends[0]), (0.98, 0.5, x_ends[1]), (0.5, 0.97, y_ends[0]), (0.5, 0.03, y_ends[1]))
        for x, y, text in ends:  # the anatomical direction at each edge of the panel
            ax.text(x, y, text, transform=ax.transAxes, color="orange", fontsize=11, fontweight="bold",
                    ha="center", va="center")
    fig.suptitle(f"{title}  slices through voxel (d, h, w) = ({d}, {h}, {w}); window {window[0]:g}..{window[1]:g} HU")
    fig.tight_layout()
    plt.show()


phantom = make_phantom(PHANTOM_SEED)
present = sorted(int(v) for v in np.unique(phantom.labels) if v > 0)
print(f"case {phantom.case_id}: shape (D, H, W) = {phantom.shape}, spacing = "
      f"{tuple(round(s, 3) for s in phantom.spacing)} mm, HU {phantom.hu.min():.0f}..{phantom.hu.max():.0f}")
print(f"vertebrae: {' '.join(level_names(present))}; Cobb angle {phantom.meta['cobb_deg']:.1f} degrees")
print("affine (voxel index -> RAS+ mm):\\n", np.round(phantom.affine, 3))
show_slices(phantom.hu, phantom.spacing, phantom.labels, title=f"phantom {phantom.case_id}")""",
    ),
    (
        "md",
        """## 2. Fit into the network's cube

`fit_volume` crops the CT to the vertebra mask plus a margin (10 mm), resamples it to the cube's voxel size
(linear for HU, nearest for labels) and cuts a `cube`-sized window centred on the spine, padding with air. When the
spine is longer than the cube, `fit_mode="crop"` keeps the part around `focus_levels` (or the mask centre) and
`fit_mode="rescale"` enlarges the voxel size instead. Every step updates the affine exactly, and `meta["fit"]` says
what was done. Here the cube covers the paper's 128 mm field of view.""",
    ),
    (
        "code",
        """fit_config = VolumeFitConfig(cube=CUBE, spacing_mm=SPACING_MM)
fitted = fit_volume(phantom, fit_config)
fit_record = fitted.meta["fit"]
for key in ("input_shape", "input_spacing_mm", "crop_shape", "resampled_shape", "window_start", "cropped_axes",
            "levels_cut", "levels_lost"):
    print(f"{key:>18}: {fit_record[key]}")
print(f"{'output':>18}: shape {fitted.shape}, spacing {fitted.spacing} mm, levels "
      f"{' '.join(level_names(sorted(int(v) for v in np.unique(fitted.labels) if v > 0)))}")
assert fitted.shape == (CUBE, CUBE, CUBE)
show_slices(fitted.hu, fitted.spacing, fitted.labels, title=f"fitted {CUBE}^3 cube")""",
    ),
    (
        "md",
        """## 3. AP and lateral DRRs, and their alignment with the CT

`DRRRenderer` casts rays through the volume (cone beam from a point source 850 mm from the isocentre, which sits at
the centroid of the vertebra mask) and integrates the attenuation mu = mu_water (1 + HU / 1000) along each ray.
`mode="physical"` gives these line integrals; `mode="slicer"` imitates 3D Slicer's "CT-X-ray" volume rendering that
the paper used (a much stronger bone/soft-tissue contrast). `to_uint8` turns them into 8-bit radiographs, bone bright.

The detector is aligned with the cube: back-projected to the isocentre plane its pixels are the CT voxels, so
`xray1[r, c]` (AP, D x W) sums `ct[r, :, c]` and `xray2[r, c]` (lateral, D x H) sums `ct[r, c, :]`. The first column
below is the CT's plain mean along the beam (a parallel projection): the DRRs should match it pixel for pixel, apart
from the slight cone-beam magnification. The check below shifts the physical line integrals by up to a few pixels
and reports the shift that correlates best with the CT's mean projection: it must be (0, 0).""",
    ),
    (
        "code",
        """def correlation(a, b):
    \"\"\"Pearson correlation of two images of the same shape.\"\"\"
    return float(np.corrcoef(np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel())[0, 1])


def best_shift(image, reference, max_shift=MAX_SHIFT_PX):
    \"\"\"The (row, column) shift of ``image`` that correlates best with ``reference``, and the correlations at that
    shift and at no shift.\"\"\"
    shifts = [(dr, dc) for dr in range(-max_shift, max_shift + 1) for dc in range(-max_shift, max_shift + 1)]
    scores = {shift: correlation(np.roll(image, shift, axis=(0, 1)), reference) for shift in shifts}
    best = max(scores, key=scores.get)
    return best, scores[best], scores[(0, 0)]


hu_tensor = torch.from_numpy(fitted.hu)
isocentre_mm = fitted.mask_centroid_mm()
renderers = {"physical": DRRRenderer(DRRConfig(mode="physical")), "slicer": DRRRenderer(DRRConfig(mode="slicer"))}
line_integrals = {}  # look -> float (2, R, C): [AP xray1 (D x W), lateral xray2 (D x H)]
drrs = {}  # look -> the same as uint8 radiographs
for look, renderer in renderers.items():
    with torch.no_grad():
        line_integrals[look] = renderer.render(hu_tensor, fitted.spacing, isocentre_mm).numpy()
    drrs[look] = renderer.to_uint8(line_integrals[look])
# The CT's attenuation (HU + 1000, air = 0) averaged along the beam: along H for AP, along W for the lateral view.
mean_ap, mean_lateral = mean_projections(np.clip(fitted.hu, -1000.0, None) + 1000.0)
means = {"AP (xray1, D x W)": mean_ap, "lateral (xray2, D x H)": mean_lateral}

fig, axes = plt.subplots(2, 3, figsize=(10, 7))
for row, (view_name, mean_image) in enumerate(means.items()):
    axes[row, 0].imshow(mean_image, cmap="gray")
    axes[row, 0].set_title(f"CT mean along the beam\\n{view_name}", fontsize=9)
    for col, look in enumerate(drrs, start=1):
        axes[row, col].imshow(drrs[look][row], cmap="gray", vmin=0, vmax=255)
        axes[row, col].set_title(f"DRR, {look} look", fontsize=9)
    shift, best, unshifted = best_shift(line_integrals["physical"][row], mean_image)
    print(f"{view_name:>24}: best shift {shift} px (correlation {best:.4f}; unshifted {unshifted:.4f})")
    if shift != (0, 0):
        raise AssertionError(f"{view_name}: the DRR is not aligned with the CT (best shift {shift})")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("superior at the top\\nradiological: patient's right on the left", fontsize=8)
axes[1, 0].set_ylabel("superior at the top\\nanterior on the left", fontsize=8)
fig.tight_layout()
plt.show()
print("DRR provenance stored with every case (excerpt):")
for key, value in list(renderers["physical"].geometry_attrs().items())[:12]:
    print(f"  {key} = {value}")""",
    ),
    (
        "md",
        """## 4. A lateral view at 75 degrees

The paper studies how robust the model is when the lateral X-ray is not a true lateral: the source turns about the
cranio-caudal axis by 90, 85, 80 or 75 degrees from the AP direction. `build_views` names the views as the HDF5
file stores them (`xray2` for 90 degrees, `xray2_085`, ...). The detector stays D x H, so the images stay aligned in
height; in the oblique view the vertebral body and the posterior elements of the two sides no longer overlap.""",
    ),
    (
        "code",
        """views = build_views([90.0, LATERAL_STUDY_ANGLE])
print("views:", [(v.name, v.angle_deg) for v in views])
renderer = renderers["physical"]
with torch.no_grad():
    integrals = renderer.render(hu_tensor, fitted.spacing, isocentre_mm, views=views).numpy()
named = {view.name: image for view, image in zip(views, renderer.to_uint8(integrals))}
oblique_name = views[2].name
# The change in attenuation along the rays (line integrals), free of each image's own display window.
difference = integrals[2] - integrals[1]

fig, axes = plt.subplots(1, 3, figsize=(11, 4))
axes[0].imshow(named["xray2"], cmap="gray", vmin=0, vmax=255)
axes[0].set_title("lateral 90 degrees (xray2)", fontsize=9)
axes[1].imshow(named[oblique_name], cmap="gray", vmin=0, vmax=255)
axes[1].set_title(f"lateral {LATERAL_STUDY_ANGLE:g} degrees ({oblique_name})", fontsize=9)
limit = max(float(np.abs(difference).max()), np.finfo(np.float32).eps)
shown = axes[2].imshow(difference, cmap="coolwarm", vmin=-limit, vmax=limit)
axes[2].set_title(f"line integrals: {oblique_name} - xray2", fontsize=9)
fig.colorbar(shown, ax=axes[2], fraction=0.046)
for ax in axes:
    ax.set_xlabel("H: anterior -> posterior", fontsize=8)
    ax.set_ylabel("D: superior -> inferior", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
relative_change = np.abs(difference).mean() / integrals[1].mean()
print(f"mean absolute change of the line integrals from 90 to {LATERAL_STUDY_ANGLE:g} degrees: "
      f"{100 * relative_change:.1f}% of their mean")""",
    ),
    (
        "md",
        """## 5. The pipeline: `x2ct-prepare` on a few phantoms

`x2ct-prepare` is a Hydra app; the notebook composes the same configuration (`conf/prepare.yaml`) with the same
overrides and calls `prepare_from_config`, exactly what the command line does. Each case becomes
`<out_dir>/<case_id>/ct_xray_data.h5` with the CT (HU + 1024), the AP view and one lateral view per angle;
`train.txt` / `test.txt` hold a reproducible split, `manifest.csv` one row per case and `previews/` a PNG per case.""",
    ),
    (
        "code",
        """PREPARED_DIR = OUT_DIR / "prepared"
overrides = [
    "source=phantom",
    f"source.n_cases={N_CASES}",
    f"out_dir={PREPARED_DIR}",
    f"volume.cube={CUBE}",
    f"volume.spacing_mm=[{SPACING_MM:g},{SPACING_MM:g},{SPACING_MM:g}]",
    "lateral_angles=[90,85,80,75]",
    "workers=1",
    "n_previews=1",
]
print("the same as:  x2ct-prepare " + " ".join(overrides))
with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    prepare_config = compose(config_name="prepare", overrides=overrides)
status = prepare_from_config(prepare_config, progress=False)
if status != 0:
    raise RuntimeError(f"x2ct-prepare failed (status {status}); see {PREPARED_DIR / MANIFEST_NAME}")
train_ids = (PREPARED_DIR / "train.txt").read_text().split()
test_ids = (PREPARED_DIR / "test.txt").read_text().split()
print(f"train: {train_ids}\\ntest:  {test_ids}")""",
    ),
    (
        "md",
        """### One HDF5 triplet

`read_triplet(path, lateral_angle)` reads and checks a case: `ct_hu_plus_1024` (D, H, W; air about 24, water 1024),
`xray1` (AP), `xray2` (the lateral view at the asked angle), every stored angle and the file attributes (spacing,
affine, isocentre, DRR geometry, phantom parameters).""",
    ),
    (
        "code",
        """case_id = (train_ids + test_ids)[0]
triplet_path = PREPARED_DIR / case_id / TRIPLET_NAME
triplet = read_triplet(triplet_path)
print(f"{triplet_path}: ct {triplet.ct_hu_plus_1024.shape} {triplet.ct_hu_plus_1024.dtype}, "
      f"xray1 {triplet.xray1.shape} {triplet.xray1.dtype}, lateral angles {triplet.available_angles}")
for key in ("schema_version", "hu_offset", "spacing_mm", "isocenter_mm", "drr.mode", "drr.geometry", "drr.sod_mm"):
    print(f"  {key} = {triplet.attrs.get(key)}")

laterals = {angle: read_triplet(triplet_path, lateral_angle=angle).xray2 for angle in triplet.available_angles}
ct_hu = triplet.ct_hu_plus_1024 - HU_OFFSET
d, h, w = (n // 2 for n in ct_hu.shape)
ct_panels = {"ct coronal [:, h, :]": ct_hu[:, h, :], "ct sagittal [:, :, w]": ct_hu[:, :, w],
             "ct axial [d, :, :]": ct_hu[d, :, :]}
xray_panels = {"xray1 (AP)": triplet.xray1}
xray_panels |= {f"lateral {angle:g} deg": image for angle, image in sorted(laterals.items(), reverse=True)}
n_cols = max(len(ct_panels), len(xray_panels))
fig, axes = plt.subplots(2, n_cols, figsize=(2.6 * n_cols, 5.6))
for ax in axes.flat:
    ax.axis("off")
for ax, (title, image) in zip(axes[0], ct_panels.items()):
    ax.imshow(image, cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1])
    ax.set_title(title, fontsize=9)
for ax, (title, image) in zip(axes[1], xray_panels.items()):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=9)
fig.suptitle(f"{case_id}: the stored CT (HU) and X-rays")
fig.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """### The manifest and a preview

`manifest.csv` has one row per input case: `ok` (prepared now), `exists` (kept from an earlier run) or `failed`
with the reason; a failed case never stops the others. Re-running the same command skips the finished cases.""",
    ),
    (
        "code",
        """with open(PREPARED_DIR / MANIFEST_NAME, newline="", encoding="utf-8") as handle:
    manifest = list(csv.DictReader(handle))
columns = ["case_id", "status", "split", "shape", "spacing_mm", "levels", "seconds", "reason"]
table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
table += ["| " + " | ".join(row[c] for c in columns) + " |" for row in manifest]
display(Markdown("\\n".join(table)))
n_ok = sum(row["status"] in ("ok", "exists") for row in manifest)
print(f"{n_ok} of {len(manifest)} cases prepared in {PREPARED_DIR}")
for preview in sorted((PREPARED_DIR / PREVIEW_DIR).glob("*.png")):
    print(preview.name)
    display(Image(filename=str(preview)))""",
    ),
    (
        "md",
        """Next: train on such a folder with `x2ct-train experiment=demo data.root=<out_dir>` (see the README), then
evaluate with `x2ct-eval` and look at the results in `02_results.ipynb`.""",
    ),
]

# --------------------------------------------------------------------------------------------- 02 results

RESULTS_CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# x2ct results: evaluation outputs and the angle study

This notebook reads what `x2ct-eval` and the study aggregator write, and shows:

1. the metrics table (`metrics.md`: the paper's Table 1 layout with confidence intervals, then modern metrics);
2. the per-case distributions of PSNR-3D, SSIM-avg and MAE0;
3. the best, median and worst test cases (slices and re-projections);
4. the **angle study**: every metric against the angle of the lateral X-ray.

Two environment variables say where the results are:

* `X2CT_EVAL_DIR`: an `x2ct-eval` output folder (with `metrics.json`, `summary.json`, `per_case.csv`, `metrics.md`,
  `figures/`);
* `X2CT_STUDY_DIR`: the aggregator's output (`table.md`, `results.csv`, `plot.png`) or a Hydra multirun folder of
  evaluations, which the notebook aggregates itself (into `X2CT_STUDY_OUT`, default a temporary folder).

Without them the notebook prints the commands that produce these folders and skips the sections.""",
    ),
    (
        "code",
        """import csv
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

from x2ct.studies.aggregate import aggregate

# The aggregator selects matplotlib's file backend (Agg) when imported: switch this notebook back to inline figures.
%matplotlib inline

EVAL_FILES = ("metrics.json", "summary.json", "per_case.csv", "metrics.md")
PAPER_COLUMN = "Paper (Table 1"  # metrics.md's column with the paper's means
STUDY_FILES = ("table.md", "results.csv")
DISTRIBUTION_METRICS = ("PSNR-3D", "SSIM-avg", "MAE0")  # the paper's headline metrics
FIGURE_RANKS = ("best", "median", "worst")  # x2ct-eval names its figures <rank>_<case>_{slices,projections}.png
STUDY_KEY = "data.lateral_angle"
STRIP_JITTER = 0.08  # horizontal spread of the per-case dots
JITTER_SEED = 0

HOW_TO = \"\"\"\\
Set X2CT_EVAL_DIR and X2CT_STUDY_DIR to see results. To make them (commands from the repository root):

  # 1. data and a model (about 10 minutes on a CPU; `make demo` does the same)
  .venv/bin/x2ct-prepare source=phantom source.n_cases=60 out_dir=data/demo \\
      volume.cube=64 'volume.spacing_mm=[2.0,2.0,2.0]'
  .venv/bin/x2ct-train experiment=demo data.root=data/demo hydra.run.dir=outputs/demo/train

  # 2. evaluation of the last checkpoint on the test cases -> X2CT_EVAL_DIR
  .venv/bin/x2ct-eval ckpt_path=outputs/demo/train/checkpoints/last.ckpt hydra.run.dir=outputs/demo/eval

  # 3. the angle study: the same checkpoint with the lateral view at 90, 85, 80 and 75 degrees -> X2CT_STUDY_DIR
  .venv/bin/x2ct-eval -m ckpt_path=outputs/demo/train/checkpoints/last.ckpt data.lateral_angle=90,85,80,75 \\\\
      hydra.sweep.dir=outputs/demo/angle_sweep
  .venv/bin/python -m x2ct.studies.aggregate outputs/demo/angle_sweep --by data.lateral_angle \\
      --out outputs/demo/angle_study

  # 4. this notebook, in Jupyter (pip install jupyterlab) or headless into /tmp/02_results_run.ipynb
  #    (absolute paths: the notebook runs in its own folder)
  export X2CT_EVAL_DIR=$PWD/outputs/demo/eval X2CT_STUDY_DIR=$PWD/outputs/demo/angle_study
  .venv/bin/jupyter execute notebooks/02_results.ipynb --output=/tmp/02_results_run
\"\"\"


def folder_from_env(name, required_files):
    \"\"\"The folder named by environment variable ``name``, or None when it is unset; FileNotFoundError when it
    does not exist or lacks one of ``required_files``.\"\"\"
    value = os.environ.get(name)
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        where = "" if folder.is_absolute() else f" (relative paths start from the notebook's folder {Path.cwd()})"
        raise FileNotFoundError(f"{name}={value}: no such folder{where}")
    missing = [f for f in required_files if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}={value}: missing {missing}")
    return folder


def is_multirun(folder):
    \"\"\"True for a Hydra multirun folder (jobs with .hydra/overrides.yaml) rather than the aggregator's output.\"\"\"
    return not (folder / "results.csv").is_file() and any(folder.rglob(".hydra/overrides.yaml"))


EVAL_DIR = folder_from_env("X2CT_EVAL_DIR", EVAL_FILES)
study_source = folder_from_env("X2CT_STUDY_DIR", ())
if study_source is not None and is_multirun(study_source):
    STUDY_DIR = Path(os.environ.get("X2CT_STUDY_OUT") or tempfile.mkdtemp(prefix="x2ct_study_"))
    aggregate([study_source], [STUDY_KEY], STUDY_DIR, title=f"angle study: {study_source.name}")
    print(f"aggregated the multirun {study_source} into {STUDY_DIR}")
else:
    STUDY_DIR = folder_from_env("X2CT_STUDY_DIR", STUDY_FILES)
if EVAL_DIR is None or STUDY_DIR is None:
    print(HOW_TO)
print(f"evaluation: {EVAL_DIR or 'not set (X2CT_EVAL_DIR)'}")
print(f"study:      {STUDY_DIR or 'not set (X2CT_STUDY_DIR)'}")""",
    ),
    (
        "md",
        """## 1. The metrics table

`metrics.md` as `x2ct-eval` wrote it. The legacy metrics follow the official X2CT-GAN code (CT scaled to [0, 1] over
2500 HU; PSNR-3D with the peak 4095 of its 12-bit convention), so they compare with the paper's Table 1 (88 real
COLONOG CTs; a reference, not a target for phantoms). The modern metrics use the true peak, HU units, 3D SSIM and
bone masks.""",
    ),
    (
        "code",
        """def show_metrics(eval_dir):
    display(Markdown((eval_dir / "metrics.md").read_text()))
    summary = json.loads((eval_dir / "summary.json").read_text())
    print(f"checkpoint: {summary.get('ckpt_path')}  split: {summary.get('split')}  "
          f"bootstrap: {summary.get('n_boot')} resamples, {summary.get('ci')} CI")
    if summary.get("skipped_cases"):
        print(f"skipped by the cosine rule: {summary['skipped_cases']}")


if EVAL_DIR is not None:
    show_metrics(EVAL_DIR)""",
    ),
    (
        "md",
        """## 2. Per-case distributions

One dot per test case, a box for the quartiles; the paper's mean (Table 1) is in each title, and drawn as a dashed
line when it falls inside the range of the cases.""",
    ),
    (
        "code",
        """def paper_values(eval_dir):
    \"\"\"{metric: the paper's mean} from the paper column of metrics.md (empty when the table has none).\"\"\"
    values, column = {}, None
    for line in (eval_dir / "metrics.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if any(cell.startswith(PAPER_COLUMN) for cell in cells):
            column = next(i for i, cell in enumerate(cells) if cell.startswith(PAPER_COLUMN))
        elif not line.startswith("|"):
            column = None  # the table with the paper column has ended
        elif column is not None and len(cells) > column and cells[column]:
            try:
                values[cells[0]] = float(cells[column])
            except ValueError:  # the |---| separator row
                pass
    return values


def read_per_case(eval_dir):
    \"\"\"per_case.csv as {metric: np.ndarray over cases} and the list of case ids.\"\"\"
    with open(eval_dir / "per_case.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{eval_dir / 'per_case.csv'} has no cases")
    names = [name for name in rows[0] if name != "case_id"]
    return {name: np.array([float(row[name]) for row in rows]) for name in names}, [row["case_id"] for row in rows]


def plot_distributions(per_case, paper, metric_names=DISTRIBUTION_METRICS):
    missing = [name for name in metric_names if name not in per_case]
    if missing:
        raise KeyError(f"per_case.csv has no column {missing}; columns: {sorted(per_case)}")
    rng = np.random.default_rng(JITTER_SEED)
    fig, axes = plt.subplots(1, len(metric_names), figsize=(3.4 * len(metric_names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), metric_names):
        values = per_case[name]
        ax.boxplot(values, widths=0.5, showfliers=False)
        ax.scatter(1 + rng.uniform(-STRIP_JITTER, STRIP_JITTER, values.size), values, s=14, alpha=0.7, zorder=3)
        title = f"{name}  (mean {values.mean():.4g}, n={values.size})"
        if name in paper:
            title += f"\\npaper {paper[name]:g}"
            low, high = ax.get_ylim()
            if low <= paper[name] <= high:  # the axis stays on the cases; the paper's line only when it is in range
                ax.axhline(paper[name], color="grey", linestyle="--", linewidth=1, label="paper")
                ax.legend(fontsize=7, loc="best")
            else:
                title += " (off this scale)"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
    fig.tight_layout()
    plt.show()


if EVAL_DIR is not None:
    per_case, case_ids = read_per_case(EVAL_DIR)
    print(f"{len(case_ids)} cases: {case_ids}")
    paper = paper_values(EVAL_DIR)
    print(f"the paper's means (Table 1, from metrics.md): {paper}")
    plot_distributions(per_case, paper)""",
    ),
    (
        "md",
        """## 3. Best, median and worst case (by PSNR-3D)

For each case `x2ct-eval` saves the tri-planar slices (real, predicted, absolute difference) and the input X-rays
beside mean projections of the prediction: a good reconstruction re-projects to images like its inputs.""",
    ),
    (
        "code",
        """def show_case_figures(eval_dir):
    figures = eval_dir / "figures"
    if not figures.is_dir():
        print(f"{figures} does not exist: run x2ct-eval with figures=true")
        return
    for rank in FIGURE_RANKS:
        for path in sorted(figures.glob(f"{rank}_*.png")):
            display(Markdown(f"**{rank}**: `{path.name}`"))
            display(Image(filename=str(path)))


if EVAL_DIR is not None:
    show_case_figures(EVAL_DIR)""",
    ),
    (
        "md",
        """## 4. The angle study

The paper trains on true laterals and asks how the reconstruction degrades when the lateral X-ray is taken at 85,
80 or 75 degrees instead. `results.csv` holds one row per (angle, metric) with the mean and its bootstrap
confidence interval; below, each metric against the lateral angle (error bars: the CI), and the aggregator's table.""",
    ),
    (
        "code",
        """def read_study(study_dir):
    \"\"\"results.csv -> (swept key, {metric: [(value, mean, ci_low, ci_high), ...] sorted by value}).\"\"\"
    with open(study_dir / "results.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        keys = reader.fieldnames[: reader.fieldnames.index("metric")]
        rows = list(reader)
    if len(keys) != 1:
        raise ValueError(f"{study_dir / 'results.csv'} sweeps {keys}; this plot needs one numeric key")
    key = keys[0]
    series = {}
    for row in rows:
        series.setdefault(row["metric"], []).append(
            (float(row[key]), float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]))
        )
    return key, {name: sorted(points) for name, points in series.items()}


def plot_study(key, series, n_columns=4):
    n_rows = -(-len(series) // n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(3.3 * n_columns, 2.7 * n_rows), squeeze=False)
    for ax, (name, points) in zip(axes.flat, series.items()):
        x, mean, low, high = (np.array(column) for column in zip(*points))
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(x)
        ax.set_xlabel(f"{key.split('.')[-1]} (degrees)" if "angle" in key else key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.invert_xaxis()  # from the true lateral (90) to the most oblique view
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    fig.suptitle("metrics against the lateral angle (mean and bootstrap CI over the test cases)", fontsize=10)
    fig.tight_layout()
    plt.show()


if STUDY_DIR is not None:
    study_key, study_series = read_study(STUDY_DIR)
    print(f"{study_key}: {sorted({p[0] for points in study_series.values() for p in points})}")
    plot_study(study_key, study_series)
    display(Markdown((STUDY_DIR / "table.md").read_text()))""",
    ),
]

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_data_pipeline.ipynb": DATA_CELLS,
    "02_results.ipynb": RESULTS_CELLS,
}


def build_notebook(cells: list[tuple[str, str]], prefix: str) -> nbformat.NotebookNode:
    """A notebook of ``cells`` ((kind, source) with kind "md" or "code"), without outputs, with fixed cell ids."""
    notebook = new_notebook()
    notebook.nbformat_minor = NBFORMAT_MINOR
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["language_info"] = {"name": "python"}
    for index, (kind, source) in enumerate(cells):
        if kind == "md":
            cell = new_markdown_cell(source)
        elif kind == "code":
            cell = new_code_cell(source)
        else:
            raise ValueError(f"cell {index} of {prefix}: kind must be 'md' or 'code', got {kind!r}")
        cell["id"] = f"{prefix}-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def notebook_text(name: str) -> str:
    """The .ipynb text of notebook ``name`` (a key of NOTEBOOKS)."""
    return nbformat.writes(build_notebook(NOTEBOOKS[name], name.split("_")[0])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed notebooks")
    parser.add_argument("--out", type=Path, default=NOTEBOOK_DIR, help="folder to write the notebooks into")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / name
        text = notebook_text(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run notebooks/build_notebooks.py): {stale}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
