"""Preview figure of a prediction: the two network inputs beside tri-planar slices of the predicted CT in HU.

Layout (one row): AP input (rows D, cols W), lateral input (rows D, cols H), then the central axial (H x W),
coronal (D x W) and sagittal (D x H) slices in radiological display (head at the top, patient's right on the
viewer's left, anterior at the top of the axial slice and on the left of the sagittal one), each drawn with the
voxel aspect ratio of the volume's spacing, and an HU colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from x2ct.io.volume import Volume
from x2ct.viz.figures import DISPLAY_HU_WINDOW, central_slices, figure_to_rgb, to_numpy

PANEL_INCHES = 2.2
FIGURE_HEIGHT_PANELS = 1.2  # figure height in panel sizes: one row of panels plus titles
COLORBAR_WIDTH_RATIO = 0.08
PREVIEW_DPI = 90
FONT_SIZE = 7.0
TITLE_FONT_SIZE = 8.0
GRAY = "gray"
# For each slice: the array axes shown as (rows, cols), used for the pixel aspect ratio.
_SLICE_AXES: dict[str, tuple[int, int]] = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}
_SLICE_SHAPES: dict[str, str] = {"axial": "H x W", "coronal": "D x W", "sagittal": "D x H"}


def build_preview_figure(
    volume: Volume,
    xray1: np.ndarray,
    xray2: np.ndarray,
    hu_window: Sequence[float] = DISPLAY_HU_WINDOW,
    title: str | None = None,
) -> Figure:
    """The preview as a matplotlib Figure (Agg, no pyplot state).

    Args:
        volume: the prediction (``hu`` (D, H, W) in HU, ``spacing`` mm).
        xray1, xray2: the preprocessed network inputs, uint8 or float [0, 1], (S, S).
        hu_window: (low, high) HU display window of the slices.
        title: figure title.
    Axes labels: ``"input/ap"``, ``"input/lateral"``, ``"prediction/<view>"``, ``"colorbar"``.
    """
    low, high = (float(v) for v in hu_window)
    if not low < high:
        raise ValueError(f"hu_window must be (low, high) with low < high, got {tuple(hu_window)}")
    inputs = {"ap": to_numpy(xray1, 2, "xray1"), "lateral": to_numpy(xray2, 2, "xray2")}
    slices = central_slices(volume.hu)
    n_panels = len(inputs) + len(slices)
    fig = Figure(
        figsize=(PANEL_INCHES * (n_panels + COLORBAR_WIDTH_RATIO), PANEL_INCHES * FIGURE_HEIGHT_PANELS), dpi=PREVIEW_DPI
    )
    grid = fig.add_gridspec(1, n_panels + 1, width_ratios=[1.0] * n_panels + [COLORBAR_WIDTH_RATIO])
    titles = {"ap": "input AP (D x W)", "lateral": "input lateral (D x H)"}
    for column, (name, image) in enumerate(inputs.items()):
        ax = fig.add_subplot(grid[0, column], label=f"input/{name}")
        ax.imshow(image, cmap=GRAY, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(titles[name], fontsize=FONT_SIZE)
        ax.set_axis_off()
    shown = None
    for offset, (view, image) in enumerate(slices.items()):
        rows_axis, cols_axis = _SLICE_AXES[view]
        ax = fig.add_subplot(grid[0, len(inputs) + offset], label=f"prediction/{view}")
        shown = ax.imshow(
            image,
            cmap=GRAY,
            vmin=low,
            vmax=high,
            interpolation="nearest",
            aspect=volume.spacing[rows_axis] / volume.spacing[cols_axis],
        )
        ax.set_title(f"{view} ({_SLICE_SHAPES[view]})", fontsize=FONT_SIZE)
        ax.set_axis_off()
    colorbar_ax = fig.add_subplot(grid[0, n_panels], label="colorbar")
    colorbar = fig.colorbar(shown, cax=colorbar_ax)
    colorbar.set_label("HU", fontsize=FONT_SIZE)
    colorbar.ax.tick_params(labelsize=FONT_SIZE)
    if title:
        fig.suptitle(title, fontsize=TITLE_FONT_SIZE)
    return fig


def preview_image(
    volume: Volume,
    xray1: np.ndarray,
    xray2: np.ndarray,
    hu_window: Sequence[float] = DISPLAY_HU_WINDOW,
    title: str | None = None,
) -> np.ndarray:
    """:func:`build_preview_figure` rendered to RGB uint8 (rows, cols, 3)."""
    return figure_to_rgb(build_preview_figure(volume, xray1, xray2, hu_window, title))
