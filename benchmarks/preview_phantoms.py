"""Preview figure of procedural spine phantoms: CT slices and the DRRs the pipeline trains on.

Usage: ``python benchmarks/preview_phantoms.py [--seeds 0 1 2 3] [--out docs/phantom_preview.png]``

Per phantom (one row): mid-sagittal, mid-coronal and axial slice through a vertebra of the raw phantom (window
[-400, 1200] HU); then, after the default fit into the 128^3 cube at 1 mm, the stored uint8 DRRs: physical cone-beam
AP and lateral (90 degrees), and the AP in the paper's 3D Slicer "CT-X-ray" look.
Also prints the generation time of each phantom.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from x2ct.drr import DRRConfig, DRRRenderer
from x2ct.io.volume import Volume
from x2ct.phantom import make_phantom
from x2ct.preparation.fit import VolumeFitConfig, fit_volume
from x2ct.preparation.pipeline import build_views

WINDOW_HU: tuple[float, float] = (-400.0, 1200.0)
DRR_COLUMNS = ("AP DRR (physical, cone)", "lateral DRR (90 deg)", "AP DRR (slicer look)")


def stored_drrs(vol: Volume) -> list[np.ndarray]:
    """The uint8 AP and lateral DRRs of the fitted cube (physical mode), and the AP in slicer mode."""
    fitted = fit_volume(vol, VolumeFitConfig())
    hu = torch.from_numpy(fitted.hu)
    views = build_views([90])
    iso = fitted.mask_centroid_mm()
    physical = DRRRenderer(DRRConfig())
    slicer = DRRRenderer(DRRConfig(mode="slicer"))
    ap, lateral = physical.to_uint8(physical.render(hu, fitted.spacing, iso, views))
    slicer_ap = slicer.to_uint8(slicer.render(hu, fitted.spacing, iso, views[:1]))[0]
    return [ap, lateral, slicer_ap]


def _show(
    ax: plt.Axes, image: np.ndarray, spacing_rc: tuple[float, float], vmin: float, vmax: float, title: str
) -> None:
    rows, cols = image.shape
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, extent=(0, cols * spacing_rc[1], rows * spacing_rc[0], 0))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def preview(seeds: list[int], out: Path) -> None:
    fig, axes = plt.subplots(len(seeds), 3 + len(DRR_COLUMNS), figsize=(18, 3.6 * len(seeds)))
    axes = np.atleast_2d(axes)
    for row, seed in enumerate(seeds):
        start = time.perf_counter()
        vol = make_phantom(seed)
        elapsed = time.perf_counter() - start
        sd, sh, sw = vol.spacing
        print(
            f"seed {seed}: {elapsed:.3f} s, shape {vol.shape}, spacing ({sd:.2f}, {sh:.2f}, {sw:.2f}) mm, "
            f"levels {vol.meta['levels'][0]}-{vol.meta['levels'][-1]}, Cobb {vol.meta['cobb_deg']:.1f} deg"
        )
        assert vol.labels is not None
        centre = np.round(vol.mask_centroid_mm() / np.asarray(vol.spacing)).astype(int)
        mid = len(vol.meta["levels"]) // 2
        body_d, body_h, _ = np.asarray(vol.meta["centres_mm"][mid]) / np.asarray(vol.spacing)
        lo, hi = WINDOW_HU
        name = f"seed {seed} ({vol.meta['levels'][0]}-{vol.meta['levels'][-1]})"
        _show(axes[row, 0], vol.hu[:, :, centre[2]], (sd, sh), lo, hi, f"{name}: sagittal")
        _show(axes[row, 1], vol.hu[:, round(body_h), :], (sd, sw), lo, hi, "coronal (through bodies)")
        _show(axes[row, 2], vol.hu[round(body_d) - 2, :, :], (sh, sw), lo, hi, f"axial ({vol.meta['levels'][mid]})")
        for col, (title, image) in enumerate(zip(DRR_COLUMNS, stored_drrs(vol), strict=True), start=3):
            _show(axes[row, col], image, (1.0, 1.0), 0, 255, title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("docs/phantom_preview.png"))
    args = parser.parse_args()
    preview(args.seeds, args.out)


if __name__ == "__main__":
    main()
