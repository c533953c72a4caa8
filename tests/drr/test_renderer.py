"""DRRRenderer: alignment invariant, physics modes, gradients, display, batching, provenance and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from x2ct.drr import DRRConfig, DRRRenderer, ViewSpec, window_to_uint8
from x2ct.drr.geometry import volume_centre_mm

AIR_HU, SOFT_HU, BONE_HU = -1000.0, 40.0, 1200.0
SHAPE = (40, 40, 40)
SPACING = (1.0, 1.0, 1.0)
AP = ViewSpec("xray1", 0.0)
LATERAL = ViewSpec("xray2", 90.0, lateral=True)


def _body_with_marker(marker: bool = True) -> torch.Tensor:
    """Air, an elliptic soft-tissue body, a posterior 'spine' column and (optionally) a bony marker at the
    patient's right (low W), anterior (low H) and superior (low D)."""
    d, h, w = np.meshgrid(*[np.arange(n, dtype=float) for n in SHAPE], indexing="ij")
    hu = np.full(SHAPE, AIR_HU)
    hu[((h - 20) / 15) ** 2 + ((w - 20) / 17) ** 2 <= 1.0] = SOFT_HU
    hu[((h - 28) / 4) ** 2 + ((w - 20) / 4) ** 2 <= 1.0] = BONE_HU
    if marker:
        hu[(d >= 6) & (d < 14) & (h >= 8) & (h < 14) & (w >= 7) & (w < 13)] = 2 * BONE_HU
    return torch.tensor(hu, dtype=torch.float32)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _peak(image: torch.Tensor) -> tuple[int, int]:
    row, col = np.unravel_index(int(image.argmax()), tuple(image.shape))
    return int(row), int(col)


@pytest.mark.parametrize("method", ["joseph", "trilinear"])
def test_alignment_invariant_default_cone(method: str) -> None:
    hu = _body_with_marker()
    iso = volume_centre_mm(SHAPE, SPACING) + np.array([0.0, 6.0, 0.0])  # spine-like, posterior isocentre
    renderer = DRRRenderer(DRRConfig(method=method, n_samples=128))
    ap, lateral = renderer.render(hu, SPACING, iso, [AP, LATERAL])
    ct = hu.numpy()
    assert _correlation(ap.numpy(), ct.mean(axis=1)) > 0.95
    assert _correlation(lateral.numpy(), ct.mean(axis=2)) > 0.95
    ap_plain, lateral_plain = renderer.render(_body_with_marker(marker=False), SPACING, iso, [AP, LATERAL])
    ap_row, ap_col = _peak(ap - ap_plain)  # where the marker shows
    lat_row, lat_col = _peak(lateral - lateral_plain)
    assert ap_row < SHAPE[0] // 2 and lat_row < SHAPE[0] // 2  # head at the top
    assert ap_col < SHAPE[2] // 2  # patient's right on the AP image's left
    assert lat_col < SHAPE[1] // 2  # anterior on the lateral image's left


def test_physical_values_of_a_water_slab() -> None:
    """Uniform water, parallel AP: p = mu_water * thickness, and HU is clipped before conversion."""
    mu_water = 0.02
    spacing = (1.0, 1.5, 1.0)
    renderer = DRRRenderer(DRRConfig(geometry="parallel", mu_water=mu_water, hu_clip=(-1000.0, 1000.0)))
    water = torch.zeros(8, 10, 12)
    p = renderer.render(water, spacing, views=[AP])
    torch.testing.assert_close(p, torch.full((1, 8, 12), mu_water * 10 * 1.5))
    dense = torch.full((8, 10, 12), 5000.0)  # clipped to 1000 HU -> 2 mu_water
    torch.testing.assert_close(renderer.render(dense, spacing, views=[AP]), 2 * p)


def test_slicer_mode_values() -> None:
    """Slicer: 1 - (1 - alpha)^L; alpha 0.05 at 1500 HU, half of it at the ramp middle, 0 below -200 HU."""
    renderer = DRRRenderer(DRRConfig(mode="slicer", geometry="parallel"))
    thickness = 10
    for hu_value, alpha in [(1500.0, 0.05), (2500.0, 0.05), (650.0, 0.025), (-500.0, 0.0)]:
        volume = torch.full((6, thickness, 6), hu_value)
        image = renderer.render(volume, SPACING, views=[AP])
        expected = 1.0 - (1.0 - alpha) ** thickness
        torch.testing.assert_close(image, torch.full_like(image, expected), rtol=1e-5, atol=1e-6)
    uint8 = renderer.to_uint8(torch.tensor([[0.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(uint8, [[0, 128, 255]])


def test_slicer_breakpoints_are_configurable() -> None:
    renderer = DRRRenderer(
        DRRConfig(mode="slicer", geometry="parallel", slicer_hu_low=0.0, slicer_hu_high=100.0, slicer_alpha_max=0.5)
    )
    image = renderer.render(torch.full((4, 2, 4), 50.0), SPACING, views=[AP])
    torch.testing.assert_close(image, torch.full_like(image, 1.0 - 0.75**2))


@pytest.mark.parametrize("method", ["joseph", "trilinear"])
def test_gradient_reaches_the_volume(method: str) -> None:
    """Parallel AP with aligned samples: d(sum p)/d(HU) = mu_water / 1000 * s_H for every voxel in the clip."""
    spacing = (1.0, 1.25, 1.0)
    cfg = DRRConfig(method=method, geometry="parallel", n_samples=12)
    hu = torch.zeros(6, 12, 8, requires_grad=True)
    DRRRenderer(cfg).render(hu, spacing, views=[AP]).sum().backward()
    assert hu.grad is not None
    torch.testing.assert_close(hu.grad, torch.full_like(hu, cfg.mu_water / 1000.0 * spacing[1]))


def test_gradient_is_finite_and_nonzero_for_cone_views() -> None:
    hu = _body_with_marker().requires_grad_(True)
    DRRRenderer().render(hu, SPACING, views=[AP, ViewSpec("xray2_085", 85.0, lateral=True)]).sum().backward()
    grad = hu.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad[5:35, 5:35, 5:35] > 0).all()  # every inner voxel is crossed by rays


def test_to_uint8_bone_brighter_than_soft_tissue() -> None:
    hu = _body_with_marker()
    renderer = DRRRenderer()
    image = renderer.to_uint8(renderer.render(hu, SPACING, views=[AP]))
    assert image.dtype == np.uint8 and image.shape == (1, 40, 40)
    spine_column, soft_column = 20, 30  # the spine (W = 20) vs only soft tissue (W = 30)
    assert image[0, 25, spine_column] > image[0, 25, soft_column] + 20
    assert image.max() == 255 and image.min() == 0


def test_window_to_uint8_fixed_and_percentile() -> None:
    p = np.array([[[0.0, 1.0], [2.0, 4.0]]])
    np.testing.assert_array_equal(window_to_uint8(p, window=(0.0, 2.0)), [[[0, 128], [255, 255]]])
    np.testing.assert_array_equal(window_to_uint8(p, percentiles=(0.0, 100.0)), [[[0, 64], [128, 255]]])
    np.testing.assert_array_equal(window_to_uint8(np.ones((1, 2, 2))), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="window"):
        window_to_uint8(p, window=(2.0, 1.0))


def test_batched_render_matches_single_and_per_volume_isocentres() -> None:
    hu = _body_with_marker()
    batch = torch.stack([hu, hu.flip(2)])
    renderer = DRRRenderer()
    views = [AP, LATERAL]
    out = renderer.render(batch, SPACING, views=views)
    assert out.shape == (2, 2, 40, 40)
    torch.testing.assert_close(out[1], renderer.render(hu.flip(2), SPACING, views=views))
    isos = np.array([[19.5, 19.5, 19.5], [19.5, 25.0, 19.5]])
    per_iso = renderer.render(batch, SPACING, isos, views)
    torch.testing.assert_close(per_iso[1], renderer.render(hu.flip(2), SPACING, isos[1], views))


def test_joseph_agrees_with_finely_sampled_trilinear() -> None:
    hu = _body_with_marker()
    views = [AP, ViewSpec("xray2_075", 75.0, lateral=True)]
    reference = DRRRenderer(DRRConfig(method="trilinear", n_samples=1024)).render(hu, SPACING, views=views)
    joseph = DRRRenderer(DRRConfig(method="joseph")).render(hu, SPACING, views=views)
    assert float((joseph - reference).norm() / reference.norm()) < 0.01


def test_non_cubic_volume_view_shapes() -> None:
    hu = torch.zeros(10, 12, 14)
    renderer = DRRRenderer()
    images = renderer.render_views(hu, SPACING, views=[AP, LATERAL])
    assert images["xray1"].shape == (10, 14) and images["xray2"].shape == (10, 12)
    with pytest.raises(ValueError, match="detector shapes"):
        renderer.render(hu, SPACING, views=[AP, LATERAL])
    stacked = DRRRenderer(DRRConfig(detector_shape=(16, 16))).render(hu, SPACING, views=[AP, LATERAL])
    assert stacked.shape == (2, 16, 16)


def test_geometry_attrs() -> None:
    renderer = DRRRenderer(DRRConfig(sid_mm=1000.0, sod_mm=800.0))
    renderer.render(torch.zeros(8, 8, 8), (2.0, 1.0, 1.5), views=[AP, LATERAL])
    attrs = renderer.geometry_attrs()
    assert attrs["mode"] == "physical" and attrs["geometry"] == "cone" and attrs["method"] == "joseph"
    assert attrs["sid_mm"] == 1000.0 and attrs["sod_mm"] == 800.0 and attrs["n_samples"] == 256
    assert attrs["magnification"] == pytest.approx(1.25)
    assert attrs["xray1_iso_pitch_col_mm"] == 1.5 and attrs["xray2_iso_pitch_col_mm"] == 1.0
    assert attrs["xray1_detector_pixel_row_mm"] == pytest.approx(2.5)
    assert attrs["hu_clip_low"] == -1000.0 and attrs["detector_shape"] is None
    assert attrs["isocenter_h_mm"] == pytest.approx(3.5)
    assert all(isinstance(v, str | int | float) or v is None for v in attrs.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "xray"}, "mode"),
        ({"geometry": "fan"}, "geometry"),
        ({"method": "siddon"}, "method"),
        ({"sod_mm": 1000.0, "sid_mm": 1000.0}, "sod_mm"),
        ({"n_samples": 0}, "n_samples"),
        ({"mu_water": 0.0}, "mu_water"),
        ({"hu_clip": (-2000.0, 3000.0)}, "hu_clip"),
        ({"display_percentiles": (50.0, 10.0)}, "percentiles"),
    ],
)
def test_bad_config_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DRRConfig(**kwargs)


def test_bad_render_arguments_raise() -> None:
    renderer = DRRRenderer()
    with pytest.raises(ValueError, match="D, H, W"):
        renderer.render(torch.zeros(8, 8), SPACING)
    with pytest.raises(ValueError, match="spacing"):
        renderer.render(torch.zeros(8, 8, 8), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="isocenter"):
        renderer.render(torch.zeros(8, 8, 8), SPACING, isocenter_mm=(1.0, 2.0))
    with pytest.raises(ValueError, match="unique"):
        renderer.render(torch.zeros(8, 8, 8), SPACING, views=[AP, AP])
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        renderer.render(np.zeros((8, 8, 8)), SPACING)  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["joseph", "trilinear"])
def test_cuda_matches_cpu(method: str) -> None:
    hu = _body_with_marker()
    renderer = DRRRenderer(DRRConfig(method=method, n_samples=128))
    views = [AP, LATERAL, ViewSpec("xray2_085", 85.0, lateral=True)]
    cpu = renderer.render(hu, SPACING, views=views)
    hu_cuda = hu.cuda().requires_grad_(True)
    cuda = renderer.render(hu_cuda, SPACING, views=views)
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-4, atol=1e-4)
    cuda.sum().backward()
    assert hu_cuda.grad is not None and torch.isfinite(hu_cuda.grad).all()


def test_object_window_ignores_the_air_around_the_body() -> None:
    """Air pixels (p ~ 0) must not set the low end of the window: the body's range gets the grey levels."""
    body = np.linspace(2.0, 3.0, 90)
    image = np.concatenate([np.zeros(10), body]).reshape(1, 10, 10)
    plain = window_to_uint8(image, percentiles=(1.0, 100.0))
    on_object = window_to_uint8(image, percentiles=(1.0, 100.0), object_fraction=0.5)
    assert on_object[0].ravel()[:10].max() == 0  # air is black
    assert np.ptp(on_object[0].ravel()[10:]) > 240 > np.ptp(plain[0].ravel()[10:]) + 100
    with pytest.raises(ValueError, match="object fraction"):
        window_to_uint8(image, object_fraction=1.5)


@pytest.mark.gpu
def test_projector_planned_for_cuda_takes_tensors_on_cuda_0() -> None:
    from x2ct.drr import build_projector

    projector = build_projector((8, 8, 8), (1.0, 1.0, 1.0), views=[AP], device="cuda")
    images = projector(torch.ones(1, 8, 8, 8, device="cuda:0"))
    assert images[0].device.type == "cuda"
