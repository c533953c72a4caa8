"""Preview figure of procedural spine phantoms: slices and simple parallel projections.

Usage: ``python benchmarks/preview_phantoms.py [--seeds 0 1 2 3] [--out docs/phantom_preview.png]``

Per phantom (one row): mid-sagittal, mid-coronal and axial slice through a vertebra (window [-400, 1200] HU),
and parallel line integrals of mu (no exponential) along H (AP view) and along W (lateral view).
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

from x2ct.data.phantom import make_phantom
from x2ct.data.volume import Volume

WINDOW_HU: tuple[float, float] = (-400.0, 1200.0)
MU_WATER_PER_MM: float = 0.0193
"""Linear attenuation of water at about 70 keV (1/mm)."""
PROJECTION_PERCENTILES: tuple[float, float] = (1.0, 99.5)


def line_integral(volume: Volume, axis: int) -> np.ndarray:
    """Parallel-beam line integral of mu (dimensionless) along ``axis`` of the (D, H, W) volume."""
    mu = MU_WATER_PER_MM * (1.0 + np.clip(volume.hu, -1000.0, 3000.0) / 1000.0)
    return mu.sum(axis=axis) * volume.spacing[axis]


def _show(
    ax: plt.Axes, image: np.ndarray, spacing_rc: tuple[float, float], vmin: float, vmax: float, title: str
) -> None:
    rows, cols = image.shape
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, extent=(0, cols * spacing_rc[1], rows * spacing_rc[0], 0))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def preview(seeds: list[int], out: Path) -> None:
    fig, axes = plt.subplots(len(seeds), 5, figsize=(15, 3.6 * len(seeds)))
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
        for col, axis, label in ((3, 1, "AP line integral (sum along H)"), (4, 2, "lateral (sum along W)")):
            proj = line_integral(vol, axis)
            vmin, vmax = np.percentile(proj, PROJECTION_PERCENTILES)
            _show(axes[row, col], proj, (sd, sw if axis == 1 else sh), vmin, vmax, label)
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
