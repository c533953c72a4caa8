"""Figures of a reconstruction: tri-planar slices (real / fake / difference) and X-ray re-projections.

Volumes are in canonical axes (D, H, W) = (superior->inferior, anterior->posterior, patient's right->left) and
on the model scale [0, 1] (value = clip(HU + 1024, 0, 2500) / 2500). Slices and projections are shown in
radiological display: head at the top, patient's right on the viewer's left, anterior at the top of axial
slices and on the left of sagittal ones. So ``xray1`` (AP, D x W) lines up with the mean along H and ``xray2``
(lateral, D x H) with the mean along W, pixel for pixel in the aligned dataset geometry.

Builders return a matplotlib :class:`~matplotlib.figure.Figure` (no pyplot state, Agg canvas) and the
``*_figure`` wrappers the rendered RGB uint8 array (H, W, 3); :func:`save_png` writes one atomically.
Rendering is deterministic: the same input gives the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU, ct_to_hu, hu_to_unit
from x2ct.drr import DEFAULT_VIEWS, DRRConfig, DRRRenderer, ViewSpec
from x2ct.utils.atomic import atomic_output

FIGURE_DPI: int = 80
PANEL_INCHES: float = 2.0
COLORBAR_WIDTH_RATIO: float = 0.07
TITLE_FONTSIZE: float = 7.0
SUPTITLE_FONTSIZE: float = 8.0
IMAGE_CMAP: str = "gray"
DIFF_CMAP: str = "magma"  # black at 0
# Colour scale floor of the difference panel, so that real == fake gives a black (not undefined) panel.
MIN_DIFF_VMAX: float = 1e-6
UINT8_MAX: int = 255
# Figure margins as fractions of the figure (left, right, bottom, top) and gaps between panels.
MARGINS: tuple[float, float, float, float] = (0.05, 0.88, 0.02, 0.9)
RIGHT_MARGIN_NO_COLORBAR: float = 0.97
PANEL_GAP: float = 0.15
TRIPLANAR_VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")
# The CT display window (HU) of every figure of the package: soft tissue grey, bone white. Configs that restate it
# (figure_hu_window, preview_hu_window) must keep the same value.
DISPLAY_HU_WINDOW: tuple[float, float] = (-400.0, 1200.0)


def to_numpy(array: np.ndarray | torch.Tensor, ndim: int, name: str) -> np.ndarray:
    """``array`` (numpy or torch, any device) as float32 numpy with exactly ``ndim`` dims; leading singleton dims
    (batch, channel) are dropped. Raises ValueError on another shape or on non-finite values."""
    if isinstance(array, torch.Tensor):
        array = array.detach().to(device="cpu", dtype=torch.float32).numpy()
    values = np.asarray(array)
    while values.ndim > ndim and values.shape[0] == 1:
        values = values[0]
    if values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims (after dropping leading 1s), got shape {np.shape(array)}")
    if values.dtype == np.uint8:
        values = values.astype(np.float32) / UINT8_MAX
    values = values.astype(np.float32, copy=False)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def central_slices(volume: np.ndarray, slice_index: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Axial (H x W) at d, coronal (D x W) at h and sagittal (D x H) at w of a (D, H, W) volume.

    ``slice_index`` = (d, h, w); None takes the centre ``n // 2`` of each axis.
    """
    shape = volume.shape
    index = tuple(n // 2 for n in shape) if slice_index is None else tuple(int(i) for i in slice_index)
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape, strict=True)):
        raise ValueError(f"slice_index must be (d, h, w) inside the volume shape {shape}, got {slice_index}")
    d, h, w = index
    return {"axial": volume[d, :, :], "coronal": volume[:, h, :], "sagittal": volume[:, :, w]}


def mean_projections(ct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parallel-beam DRR-style projections of a (D, H, W) volume: (mean along H (D x W, AP), mean along W
    (D x H, lateral)), in the volume's units."""
    return ct.mean(axis=1), ct.mean(axis=2)


def unit_range(image: np.ndarray) -> np.ndarray:
    """Linearly stretch an image to [0, 1] by its own min and max (a constant image becomes 0)."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image)
    return (image - low) / (high - low)


@dataclass
class DRRSpec:
    """How to render real DRRs of a model-scale volume in the re-projection figure.

    Attributes:
        config: the DRR settings (geometry, mode, display window).
        spacing_mm: voxel size of the model volume along (D, H, W) in mm.
        views: the (AP, lateral) views to render, e.g. ``x2ct.preparation.pipeline.build_views([85.0])``.
        ct_window_hu: the model normalization's HU window ([0, 1] <-> HU), as in the data module.
    """

    config: DRRConfig = field(default_factory=DRRConfig)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    views: tuple[ViewSpec, ...] = DEFAULT_VIEWS
    ct_window_hu: tuple[float, float] = DEFAULT_CT_WINDOW_HU
    _renderer: DRRRenderer | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.spacing_mm = tuple(float(s) for s in self.spacing_mm)  # type: ignore[assignment]
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"DRRSpec.spacing_mm must be three positive mm values, got {self.spacing_mm}")
        self.views = tuple(self.views)
        if len(self.views) != 2:
            raise ValueError(f"DRRSpec.views must be (AP view, lateral view), got {len(self.views)} views")

    def render(self, ct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DRRs of a model-scale (D, H, W) volume as two uint8 images (AP, lateral), bone bright."""
        if self._renderer is None:
            self._renderer = DRRRenderer(self.config)
        hu = torch.from_numpy(ct_to_hu(ct, self.ct_window_hu).astype(np.float32))
        with torch.no_grad():
            images = self._renderer.render_views(hu, self.spacing_mm, None, self.views)
        ap, lateral = (self._renderer.to_uint8(images[view.name]) for view in self.views)
        return ap, lateral


def _new_figure(
    n_rows: int, n_cols: int, width_ratios: Sequence[float], right: float = MARGINS[1]
) -> tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas with a fixed grid of axes (rows x cols) of square panels, no ticks; ``right`` is
    the right edge of the grid as a fraction of the figure width."""
    left, _, bottom, top = MARGINS
    width = PANEL_INCHES * sum(width_ratios) / (right - left)
    # Height that makes square panels: matplotlib's gaps are fractions of the mean panel size.
    mean_ratio = sum(width_ratios) / n_cols
    panel_width = PANEL_INCHES / (1.0 + PANEL_GAP * (n_cols - 1) * mean_ratio / sum(width_ratios))
    height = n_rows * panel_width * (1.0 + PANEL_GAP * (n_rows - 1) / n_rows) / (top - bottom)
    fig = Figure(figsize=(width, height), dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        n_rows,
        n_cols,
        squeeze=False,
        gridspec_kw={
            "width_ratios": list(width_ratios),
            "left": left,
            "right": right,
            "bottom": bottom,
            "top": top,
            "wspace": PANEL_GAP,
            "hspace": PANEL_GAP,
        },
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _show(ax: Axes, image: np.ndarray, label: str, title: str | None, cmap: str, vmin: float, vmax: float):
    ax.set_label(label)
    if title:
        ax.set_title(title, fontsize=TITLE_FONTSIZE)
    return ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")


def build_triplanar_figure(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    titles: tuple[str, str] = ("real", "fake"),
    hu_window: Sequence[float] | None = None,
    slice_index: Sequence[int] | None = None,
    diff_max: float | None = None,
    suptitle: str | None = None,
    ct_window_hu: Sequence[float] = DEFAULT_CT_WINDOW_HU,
) -> Figure:
    """Tri-planar figure: rows real / fake / |real - fake|, columns axial (H x W), coronal (D x W), sagittal (D x H).

    Args:
        real, fake: (D, H, W) volumes on the model scale [0, 1] (leading singleton dims are dropped).
        titles: names of the first two rows.
        hu_window: (low, high) display window in HU for the CT rows; None shows the whole [0, 1] range.
        slice_index: (d, h, w) slice indices; None = the central slice of each axis.
        diff_max: top of the difference colour scale in model units; None = the largest shown difference.
        suptitle: figure title (e.g. case and epoch).
        ct_window_hu: the model normalization's HU window (value = (HU - low) / (high - low)).
    Every panel's axes carry the label ``"<row>/<view>"`` with row in (real, fake, difference) and view in
    (axial, coronal, sagittal).
    """
    real_np = to_numpy(real, 3, "real")
    fake_np = to_numpy(fake, 3, "fake")
    if real_np.shape != fake_np.shape:
        raise ValueError(f"real and fake volumes differ in shape: {real_np.shape} vs {fake_np.shape}")
    if hu_window is None:
        vmin, vmax = 0.0, 1.0
    else:
        low_hu, high_hu = (float(v) for v in hu_window)
        if not low_hu < high_hu:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {tuple(hu_window)}")
        vmin, vmax = (float(hu_to_unit(np.float64(v), ct_window_hu)) for v in (low_hu, high_hu))
    real_slices = central_slices(real_np, slice_index)
    fake_slices = central_slices(fake_np, slice_index)
    diff_slices = {view: np.abs(real_slices[view] - fake_slices[view]) for view in TRIPLANAR_VIEWS}
    if diff_max is None:
        diff_max = max(float(s.max()) for s in diff_slices.values())
    elif diff_max <= 0:
        raise ValueError(f"diff_max must be positive, got {diff_max}")
    diff_max = max(float(diff_max), MIN_DIFF_VMAX)

    fig, axes = _new_figure(3, len(TRIPLANAR_VIEWS) + 1, [1.0] * len(TRIPLANAR_VIEWS) + [COLORBAR_WIDTH_RATIO])
    shape_names = {"axial": "H x W", "coronal": "D x W", "sagittal": "D x H"}
    index = tuple(n // 2 for n in real_np.shape) if slice_index is None else tuple(slice_index)
    positions = {"axial": f"d={index[0]}", "coronal": f"h={index[1]}", "sagittal": f"w={index[2]}"}
    rows = (
        ("real", titles[0], real_slices, IMAGE_CMAP, vmin, vmax),
        ("fake", titles[1], fake_slices, IMAGE_CMAP, vmin, vmax),
        ("difference", f"|{titles[0]} - {titles[1]}|", diff_slices, DIFF_CMAP, 0.0, diff_max),
    )
    diff_image = None
    for r, (row, row_title, slices, cmap, low, high) in enumerate(rows):
        axes[r, 0].set_ylabel(row_title, fontsize=TITLE_FONTSIZE)
        for c, view in enumerate(TRIPLANAR_VIEWS):
            title = f"{view} ({shape_names[view]}, {positions[view]})" if r == 0 else None
            image = _show(axes[r, c], slices[view], f"{row}/{view}", title, cmap, low, high)
            if row == "difference":
                diff_image = image
    for r in range(2):
        axes[r, -1].set_axis_off()
    colorbar = fig.colorbar(diff_image, cax=axes[2, -1])
    colorbar.ax.tick_params(labelsize=TITLE_FONTSIZE)
    width_hu = float(ct_window_hu[1]) - float(ct_window_hu[0])
    colorbar.set_label(f"model units (1 = {width_hu:g} HU)", fontsize=TITLE_FONTSIZE)
    if suptitle:
        fig.suptitle(suptitle, fontsize=SUPTITLE_FONTSIZE)
    return fig


def build_reprojection_figure(
    xray1: np.ndarray | torch.Tensor,
    xray2: np.ndarray | torch.Tensor,
    fake_ct: np.ndarray | torch.Tensor,
    drr: DRRSpec | None = None,
    suptitle: str | None = None,
) -> Figure:
    """The input X-rays beside re-projections of the predicted volume.

    Args:
        xray1: AP input (S, S) (rows D, columns W), float in [0, 1] or uint8.
        xray2: lateral input (S, S) (rows D, columns H), float in [0, 1] or uint8.
        fake_ct: predicted (D, H, W) volume on the model scale [0, 1].
        drr: when given, a third column with DRRs rendered by :class:`~x2ct.drr.DRRRenderer`.
        suptitle: figure title.
    Row 0 is AP, row 1 lateral; columns: input, mean projection (each stretched to its own min..max), DRR.
    Axes labels: ``"input/ap"``, ``"mean/ap"``, ``"drr/ap"`` and the same with ``lateral``.
    """
    inputs = {"ap": to_numpy(xray1, 2, "xray1"), "lateral": to_numpy(xray2, 2, "xray2")}
    ct = to_numpy(fake_ct, 3, "fake_ct")
    mean_ap, mean_lateral = mean_projections(ct)
    columns = [
        ("input", {"ap": "input xray1 (AP, D x W)", "lateral": "input xray2 (lateral, D x H)"}, inputs),
        (
            "mean",
            {"ap": "fake CT: mean along H (AP)", "lateral": "fake CT: mean along W (lateral)"},
            {"ap": unit_range(mean_ap), "lateral": unit_range(mean_lateral)},
        ),
    ]
    if drr is not None:
        drr_ap, drr_lateral = drr.render(ct)
        names = {"ap": drr.views[0].name, "lateral": drr.views[1].name}
        columns.append(
            (
                "drr",
                {view: f"fake CT: DRR {names[view]} ({drr.config.geometry})" for view in names},
                {"ap": drr_ap.astype(np.float32) / UINT8_MAX, "lateral": drr_lateral.astype(np.float32) / UINT8_MAX},
            )
        )
    fig, axes = _new_figure(2, len(columns), [1.0] * len(columns), right=RIGHT_MARGIN_NO_COLORBAR)
    for c, (column, titles, images) in enumerate(columns):
        for r, view in enumerate(("ap", "lateral")):
            _show(axes[r, c], images[view], f"{column}/{view}", titles[view], IMAGE_CMAP, 0.0, 1.0)
    if suptitle:
        fig.suptitle(suptitle, fontsize=SUPTITLE_FONTSIZE)
    return fig


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure on its Agg canvas to an RGB uint8 array (H, W, 3)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def axes_pixel_box(fig: Figure, label: str) -> tuple[slice, slice]:
    """(rows, cols) slices of the RGB array of ``fig`` covered by the axes labelled ``label`` (after a draw)."""
    matches = [ax for ax in fig.axes if ax.get_label() == label]
    if len(matches) != 1:
        raise ValueError(f"expected one axes labelled {label!r}, found {len(matches)}")
    box = matches[0].get_window_extent()
    height = fig.canvas.get_width_height()[1]
    rows = slice(round(height - box.y1), round(height - box.y0))
    cols = slice(round(box.x0), round(box.x1))
    return rows, cols


def triplanar_figure(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    titles: tuple[str, str] = ("real", "fake"),
    hu_window: Sequence[float] | None = None,
    slice_index: Sequence[int] | None = None,
    diff_max: float | None = None,
    suptitle: str | None = None,
    ct_window_hu: Sequence[float] = DEFAULT_CT_WINDOW_HU,
) -> np.ndarray:
    """:func:`build_triplanar_figure` rendered to RGB uint8 (H, W, 3); ``ct_window_hu`` is the model
    normalization's HU window of ``real`` and ``fake`` (the data module's ``window``)."""
    figure = build_triplanar_figure(real, fake, titles, hu_window, slice_index, diff_max, suptitle, ct_window_hu)
    return figure_to_rgb(figure)


def reprojection_figure(
    xray1: np.ndarray | torch.Tensor,
    xray2: np.ndarray | torch.Tensor,
    fake_ct: np.ndarray | torch.Tensor,
    drr: DRRSpec | None = None,
    suptitle: str | None = None,
) -> np.ndarray:
    """:func:`build_reprojection_figure` rendered to RGB uint8 (H, W, 3)."""
    return figure_to_rgb(build_reprojection_figure(xray1, xray2, fake_ct, drr, suptitle))


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB uint8 (H, W, 3) image as PNG atomically (no half-written file on error)."""
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"save_png needs an RGB uint8 (H, W, 3) array, got {image.dtype} {image.shape} for {path}")
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
