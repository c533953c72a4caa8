"""Figures: shapes, the difference panel, the axis convention of the re-projections, PNG writing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from x2ct.drr import DRRConfig
from x2ct.viz import (
    DISPLAY_HU_WINDOW,
    DRRSpec,
    axes_pixel_box,
    build_reprojection_figure,
    build_triplanar_figure,
    central_slices,
    figure_to_rgb,
    mean_projections,
    reprojection_figure,
    save_png,
    triplanar_figure,
)

# A non-cubic volume so that a swapped axis changes the shape or the position of a feature.
SHAPE = (32, 24, 40)
BLOCK_D, BLOCK_H, BLOCK_W = slice(4, 10), slice(14, 20), slice(6, 12)
BACKGROUND = 0.2
BRIGHT = 0.9
DARK_LEVEL = 40  # max RGB value of a "black" pixel of the magma colormap at 0
BRIGHT_LEVEL = 150  # min max-channel value of a bright pixel


def block_volume() -> np.ndarray:
    """(D, H, W) volume at BACKGROUND with a BRIGHT block at (BLOCK_D, BLOCK_H, BLOCK_W)."""
    volume = np.full(SHAPE, BACKGROUND, dtype=np.float32)
    volume[BLOCK_D, BLOCK_H, BLOCK_W] = BRIGHT
    return volume


def panel(fig, rgb: np.ndarray, label: str) -> np.ndarray:
    rows, cols = axes_pixel_box(fig, label)
    return rgb[rows, cols]


def pixel_at(panel_rgb: np.ndarray, shape: tuple[int, int], index: tuple[float, float]) -> np.ndarray:
    """RGB of the panel pixel showing array element ``index`` (row, col) of an image of ``shape``."""
    height, width = panel_rgb.shape[:2]
    row = int((index[0] + 0.5) / shape[0] * height)
    col = int((index[1] + 0.5) / shape[1] * width)
    return panel_rgb[row, col]


def centre(s: slice) -> float:
    return (s.start + s.stop - 1) / 2


def test_triplanar_figure_is_rgb_uint8_and_deterministic() -> None:
    real = block_volume()
    fake = torch.from_numpy(real[None, None] * 0.5)  # torch (1, 1, D, H, W) is accepted
    first = triplanar_figure(real, fake)
    second = triplanar_figure(real, fake)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape[0] > 200 and first.shape[1] > 200
    np.testing.assert_array_equal(first, second)


def test_central_slices_take_the_middle_of_each_axis() -> None:
    volume = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    slices = central_slices(volume)
    np.testing.assert_array_equal(slices["axial"], volume[16])
    np.testing.assert_array_equal(slices["coronal"], volume[:, 12, :])
    np.testing.assert_array_equal(slices["sagittal"], volume[:, :, 20])
    assert central_slices(volume, (1, 2, 3))["sagittal"].shape == (32, 24)
    with pytest.raises(ValueError, match="slice_index"):
        central_slices(volume, (32, 0, 0))


def test_difference_panel_black_where_equal_bright_where_different() -> None:
    real = block_volume()
    fake = real.copy()
    fake[BLOCK_D, BLOCK_H, BLOCK_W] = BACKGROUND  # the prediction misses the block
    index = (centre(BLOCK_D), centre(BLOCK_H), centre(BLOCK_W))
    fig = build_triplanar_figure(real, fake, slice_index=tuple(int(i) for i in index))
    rgb = figure_to_rgb(fig)
    coronal = panel(fig, rgb, "difference/coronal")  # D x W
    assert pixel_at(coronal, (SHAPE[0], SHAPE[2]), (index[0], index[2])).max() > BRIGHT_LEVEL
    assert pixel_at(coronal, (SHAPE[0], SHAPE[2]), (24, 30)).max() < DARK_LEVEL
    sagittal = panel(fig, rgb, "difference/sagittal")  # D x H
    assert pixel_at(sagittal, (SHAPE[0], SHAPE[1]), (index[0], index[1])).max() > BRIGHT_LEVEL
    assert pixel_at(sagittal, (SHAPE[0], SHAPE[1]), (index[0], 2)).max() < DARK_LEVEL
    # The real row shows the block, the fake row does not.
    real_axial = panel(fig, rgb, "real/axial")  # H x W
    fake_axial = panel(fig, rgb, "fake/axial")
    where = (index[1], index[2])
    assert pixel_at(real_axial, SHAPE[1:], where)[0] > pixel_at(fake_axial, SHAPE[1:], where)[0] + 100

    identical = build_triplanar_figure(real, real)
    rgb_identical = figure_to_rgb(identical)
    for view in ("axial", "coronal", "sagittal"):
        inner = panel(identical, rgb_identical, f"difference/{view}")[3:-3, 3:-3]
        assert inner.max() < DARK_LEVEL, view


def test_hu_window_changes_the_ct_display() -> None:
    real = block_volume()
    full = build_triplanar_figure(real, real)
    # Window [-1024 + 0.1 * 2500, ...]: the background 0.2 lies mid-window, brighter than on the [0, 1] scale.
    windowed = build_triplanar_figure(real, real, hu_window=(-1024 + 250.0, -1024 + 750.0))
    grey_full = panel(full, figure_to_rgb(full), "real/coronal")[2, 2, 0]
    grey_windowed = panel(windowed, figure_to_rgb(windowed), "real/coronal")[2, 2, 0]
    assert abs(int(grey_full) - round(BACKGROUND * 255)) <= 2
    assert abs(int(grey_windowed) - round(0.2 * 255)) > 50
    with pytest.raises(ValueError, match="hu_window"):
        build_triplanar_figure(real, real, hu_window=(500.0, -500.0))


def test_model_ct_window_reaches_the_figure_and_its_colour_bar() -> None:
    """A non-default normalization window changes the HU of every voxel, hence the windowed display and the
    colour-bar label, through the RGB wrapper too."""
    real = block_volume()
    fake = real * 0.5
    window = (-1000.0, 1000.0)
    through_block = (int(centre(BLOCK_D)), int(centre(BLOCK_H)), int(centre(BLOCK_W)))
    figure = build_triplanar_figure(
        real, fake, hu_window=DISPLAY_HU_WINDOW, slice_index=through_block, ct_window_hu=window
    )
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel().startswith("model units")]
    assert labels == ["model units (1 = 2000 HU)"]
    default = triplanar_figure(real, fake, hu_window=DISPLAY_HU_WINDOW, slice_index=through_block)
    rgb = triplanar_figure(real, fake, hu_window=DISPLAY_HU_WINDOW, slice_index=through_block, ct_window_hu=window)
    np.testing.assert_array_equal(rgb, figure_to_rgb(figure))
    assert not np.array_equal(rgb, default)
    # BRIGHT 0.9 is 800 HU on (-1000, 1000); the (-400, 1200) display window becomes (0.3, 1.0) on that scale (the
    # model range ends at 1000 HU), so the block is grey (0.9 - 0.3) / 0.7; by default it is 1226 HU, white.
    coronal = panel(figure, rgb, "real/coronal")
    grey = int(pixel_at(coronal, (SHAPE[0], SHAPE[2]), (centre(BLOCK_D), centre(BLOCK_W)))[0])
    assert abs(grey - round(0.6 / 0.7 * 255)) <= 3


def test_bad_inputs_raise_clear_errors() -> None:
    real = block_volume()
    with pytest.raises(ValueError, match="differ in shape"):
        triplanar_figure(real, real[:-1])
    with pytest.raises(ValueError, match="fake must have 3 dims"):
        triplanar_figure(real, real[0])
    nan = real.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        triplanar_figure(real, nan)
    with pytest.raises(ValueError, match="RGB uint8"):
        save_png(np.zeros((4, 4), dtype=np.uint8), "unused.png")


def test_mean_projections_follow_the_axis_convention() -> None:
    ap, lateral = mean_projections(block_volume())
    assert ap.shape == (SHAPE[0], SHAPE[2]) and lateral.shape == (SHAPE[0], SHAPE[1])
    assert np.unravel_index(np.argmax(ap), ap.shape)[1] in range(BLOCK_W.start, BLOCK_W.stop)
    assert np.unravel_index(np.argmax(lateral), lateral.shape)[1] in range(BLOCK_H.start, BLOCK_H.stop)


def test_reprojection_shows_the_block_at_its_d_w_and_d_h_position() -> None:
    ct = block_volume()
    xray1, xray2 = mean_projections(ct)  # stand-in inputs (D x W, D x H)
    fig = build_reprojection_figure(xray1, xray2, ct)
    rgb = figure_to_rgb(fig)
    labels = {ax.get_label() for ax in fig.axes}
    assert {"input/ap", "mean/ap", "input/lateral", "mean/lateral"} <= labels and "drr/ap" not in labels
    ap = panel(fig, rgb, "mean/ap")
    block_dw = (centre(BLOCK_D), centre(BLOCK_W))
    mirrored_dw = (SHAPE[0] - 1 - block_dw[0], SHAPE[2] - 1 - block_dw[1])
    assert pixel_at(ap, (SHAPE[0], SHAPE[2]), block_dw)[0] > BRIGHT_LEVEL
    assert pixel_at(ap, (SHAPE[0], SHAPE[2]), mirrored_dw)[0] < DARK_LEVEL
    lateral = panel(fig, rgb, "mean/lateral")
    block_dh = (centre(BLOCK_D), centre(BLOCK_H))
    mirrored_dh = (SHAPE[0] - 1 - block_dh[0], SHAPE[1] - 1 - block_dh[1])
    assert pixel_at(lateral, (SHAPE[0], SHAPE[1]), block_dh)[0] > BRIGHT_LEVEL
    assert pixel_at(lateral, (SHAPE[0], SHAPE[1]), mirrored_dh)[0] < DARK_LEVEL
    # Each panel keeps its image's aspect: AP is D x W (32 x 40), lateral D x H (32 x 24).
    assert ap.shape[1] > ap.shape[0] > lateral.shape[1]


def test_reprojection_with_drr_renderer_lines_up_with_the_block() -> None:
    ct = block_volume()
    xray1, xray2 = mean_projections(ct)
    spec = DRRSpec(DRRConfig(geometry="parallel", display_object_fraction=None), spacing_mm=(2.0, 2.0, 2.0))
    fig = build_reprojection_figure(torch.from_numpy(xray1), torch.from_numpy(xray2), ct, drr=spec)
    rgb = figure_to_rgb(fig)
    assert [ax.get_title() for ax in fig.axes if ax.get_label() == "drr/ap"] == ["fake CT: DRR xray1 (parallel)"]
    ap = panel(fig, rgb, "drr/ap")
    assert pixel_at(ap, (SHAPE[0], SHAPE[2]), (centre(BLOCK_D), centre(BLOCK_W)))[0] > BRIGHT_LEVEL
    assert pixel_at(ap, (SHAPE[0], SHAPE[2]), (26, 30))[0] < DARK_LEVEL
    lateral = panel(fig, rgb, "drr/lateral")
    assert pixel_at(lateral, (SHAPE[0], SHAPE[1]), (centre(BLOCK_D), centre(BLOCK_H)))[0] > BRIGHT_LEVEL
    assert pixel_at(lateral, (SHAPE[0], SHAPE[1]), (26, 4))[0] < DARK_LEVEL
    with pytest.raises(ValueError, match="spacing_mm"):
        DRRSpec(spacing_mm=(1.0, 0.0, 1.0))


def test_save_png_round_trips_the_pixels(tmp_path) -> None:
    rgb = reprojection_figure(np.zeros((16, 16)), np.ones((16, 16), dtype=np.float32), block_volume())
    path = tmp_path / "sub" / "figure.png"
    save_png(rgb, path)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]  # no temporary file left behind
