"""Preview figures of a prepared case: CT slices beside its rendered X-rays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from x2ct.io.volume import Volume
from x2ct.utils.atomic import atomic_output
from x2ct.viz.figures import DISPLAY_HU_WINDOW

PREVIEW_DPI = 100


def save_case_preview(volume: Volume, images: dict[str, np.ndarray], path: str | Path) -> None:
    """Write a PNG: mid-coronal, mid-sagittal and mid-axial CT slices (window DISPLAY_HU_WINDOW) and every X-ray.

    ``images`` maps dataset names (``xray1``, ``xray2``, ``xray2_085``, ...) to uint8 (rows, cols) images.
    Slices through the mask centroid; axes labelled with the canonical directions.
    """
    centre = np.round(volume.mask_centroid_mm() / np.asarray(volume.spacing)).astype(int)
    d, h, w = (int(np.clip(c, 0, n - 1)) for c, n in zip(centre, volume.shape, strict=True))
    slices = {
        "coronal (D x W)": volume.hu[:, h, :],
        "sagittal (D x H)": volume.hu[:, :, w],
        "axial (H x W)": volume.hu[d, :, :],
    }
    n_panels = len(slices) + len(images)
    fig = Figure(figsize=(2.4 * n_panels, 2.8))  # its own Agg canvas: no pyplot state, no backend switch
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    for ax, (title, image) in zip(axes, slices.items(), strict=False):
        ax.imshow(image, cmap="gray", vmin=DISPLAY_HU_WINDOW[0], vmax=DISPLAY_HU_WINDOW[1])
        ax.set_title(title, fontsize=8)
    for ax, (name, image) in zip(axes[len(slices) :], images.items(), strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{volume.case_id}  spacing {tuple(round(s, 3) for s in volume.spacing)} mm", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=PREVIEW_DPI, format="png")
