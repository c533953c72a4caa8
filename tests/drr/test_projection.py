"""Projection matrices: they agree with what the DRR projector renders (phantom footprints, back-projection,
markers), for cone and parallel beams and any angle, and rebuild a triplet's views from its attributes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from x2ct.drr import (
    DRRConfig,
    DRRRenderer,
    ViewSpec,
    flip_image_columns,
    flip_volume_x,
    project_mu,
    projection_matrix,
    triplet_projection_matrices,
)
from x2ct.drr import projection as projection_module
from x2ct.io.volume import Volume
from x2ct.phantom import make_phantom
from x2ct.preparation.fit import VolumeFitConfig, fit_volume
from x2ct.preparation.pipeline import build_views

# A non-cubic grid with anisotropic voxels, so that a swapped axis or spacing shows.
SHAPE = (32, 40, 36)
SPACING = (4.5, 3.5, 4.0)
SOD_MM = 400.0  # a short source distance: the cone differs clearly from a parallel beam
ISO_OFFSET_MM = np.array([6.0, -8.0, 10.0])  # isocentre away from the bone's centroid
GEOMETRIES = ("cone", "parallel")
LATERAL_ANGLES = (90.0, 85.0, 75.0)
AP = ViewSpec("xray1", 0.0)
CENTROID_TOLERANCE_PX = 1.0
WRONG_ANGLE_OFFSET_DEG = 30.0
BACKPROJECTION_MARGIN = 0.05  # correlation gained by the right matrix over a wrong one
RECORDED_ANGLES = (90.0, 85.0)
RECORDED_ISO_MM = np.array([61.0, 72.0, 69.0])


@pytest.fixture(scope="module")
def phantom() -> Volume:
    return fit_volume(make_phantom(3), VolumeFitConfig(cube=SHAPE, spacing_mm=SPACING))


def iso_of(volume: Volume) -> np.ndarray:
    return volume.mask_centroid_mm() + ISO_OFFSET_MM


def lateral(angle: float) -> ViewSpec:
    return ViewSpec("xray2", angle, lateral=True)


def grid_points(shape: tuple[int, int, int]) -> np.ndarray:
    """Homogeneous grid coordinates (x, y, z, 1) of every voxel, (D, H, W, 4), align_corners=False centres."""
    axes = [(2.0 * np.arange(n) + 1.0) / n - 1.0 for n in shape]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return np.stack([xx, yy, zz, np.ones_like(xx)], axis=-1)


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 4) homogeneous grid points -> (..., 2) image coordinates (u, v)."""
    homogeneous = points @ np.asarray(matrix, dtype=np.float64).T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def to_pixels(uv: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(u, v) in [-1, 1] -> (row, col) pixel indices (align_corners=False)."""
    return np.stack([((uv[..., 1] + 1.0) * rows - 1.0) / 2.0, ((uv[..., 0] + 1.0) * cols - 1.0) / 2.0], axis=-1)


def weighted_centroid_px(image: np.ndarray) -> np.ndarray:
    rows, cols = np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij")
    weight = image / image.sum()
    return np.array([(rows * weight).sum(), (cols * weight).sum()])


def backproject(image: torch.Tensor, matrix: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
    """Every voxel reads ``image`` (rows, cols) where ``matrix`` projects it: (D, H, W)."""
    uv = torch.as_tensor(project(matrix, grid_points(shape)), dtype=torch.float32)
    sampled = F.grid_sample(image[None, None].float(), uv.reshape(1, 1, -1, 2), align_corners=False)
    return sampled.reshape(shape)


# -------------------------------------------------------------------------------- against the projector


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("view", [AP, *(lateral(a) for a in LATERAL_ANGLES)], ids=lambda v: f"{v.angle_deg:g}")
def test_bone_centroids_project_onto_their_footprints(phantom: Volume, geometry: str, view: ViewSpec) -> None:
    """Each vertebra's centroid lands, through P, on the centroid of its rendered footprint."""
    iso = iso_of(phantom)
    matrix = projection_matrix(view, SHAPE, SPACING, iso, geometry=geometry, sod_mm=SOD_MM)
    points = grid_points(SHAPE)
    levels = [int(label) for label in np.unique(phantom.labels) if label > 0]
    assert len(levels) >= 3
    for level in levels:
        bone = phantom.labels == level
        footprint = project_mu(
            torch.from_numpy(bone.astype(np.float32)), SPACING, [view], iso, geometry=geometry, sod_mm=SOD_MM
        )[0].numpy()
        expected = weighted_centroid_px(footprint)
        found = to_pixels(project(matrix, points[bone].mean(axis=0)), *footprint.shape)
        np.testing.assert_allclose(found, expected, atol=CENTROID_TOLERANCE_PX, err_msg=f"level {level}")


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("angle", LATERAL_ANGLES)
def test_backprojected_views_find_the_bone_only_with_the_right_matrices(
    phantom: Volume, geometry: str, angle: float
) -> None:
    """The product of both views back-projected through their matrices is a visual hull of the bone; a wrong
    lateral angle or unmirrored lateral columns smear it."""
    iso = iso_of(phantom)
    bone = phantom.labels > 0
    mu = torch.from_numpy(bone.astype(np.float32))

    def matrix(view: ViewSpec) -> np.ndarray:
        return projection_matrix(view, SHAPE, SPACING, iso, geometry=geometry, sod_mm=SOD_MM)

    def correlation(lateral_view: ViewSpec) -> float:
        hull = backproject(images[0], matrix(AP), SHAPE) * backproject(images[1], matrix(lateral_view), SHAPE)
        return float(np.corrcoef(hull.numpy().ravel(), bone.ravel())[0, 1])

    images = [project_mu(mu, SPACING, [v], iso, geometry=geometry, sod_mm=SOD_MM)[0] for v in (AP, lateral(angle))]
    right = correlation(lateral(angle))
    assert right > correlation(lateral(angle - WRONG_ANGLE_OFFSET_DEG)) + BACKPROJECTION_MARGIN
    assert right > correlation(ViewSpec("xray2", angle, lateral=False)) + BACKPROJECTION_MARGIN


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("method", ["joseph", "trilinear"])
def test_marker_resampled_through_the_matrix_reads_its_peak(geometry: str, method: str) -> None:
    """A bright voxel rendered by DRRRenderer: the pixel P points to is the peak of each view."""
    marker = (9, 28, 11)
    hu = torch.full(SHAPE, -1000.0)
    hu[marker] = 3000.0
    iso = np.array([70.0, 60.0, 80.0])
    renderer = DRRRenderer(DRRConfig(geometry=geometry, method=method, sod_mm=SOD_MM, sid_mm=2 * SOD_MM))
    point = grid_points(SHAPE)[marker]
    for view in (AP, *(lateral(a) for a in LATERAL_ANGLES)):
        image = renderer.render_views(hu, SPACING, iso, [view])[view.name]
        uv = project(projection_matrix(view, SHAPE, SPACING, iso, geometry=geometry, sod_mm=SOD_MM), point)
        grid = torch.tensor(uv, dtype=torch.float32).reshape(1, 1, 1, 2)
        read = F.grid_sample(image[None, None], grid, align_corners=False)
        assert read.item() > 0.5 * image.max().item(), view
        peak = np.unravel_index(int(image.argmax()), tuple(image.shape))
        np.testing.assert_allclose(to_pixels(uv, *image.shape), peak, atol=0.75, err_msg=str(view))


# ------------------------------------------------------------------------------------------- properties


def test_aligned_parallel_views_are_the_x2ct_convention() -> None:
    """Parallel beam, isocentre at the centre, default detector: xray1 [r, c] ~ ct[r, :, c] (u = x, v = z) and
    xray2 [r, c] ~ ct[r, c, :] (u = y, v = z), whatever the shape and spacing."""
    ap = projection_matrix(AP, SHAPE, SPACING, geometry="parallel")
    np.testing.assert_allclose(ap, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)
    side = projection_matrix(lateral(90.0), SHAPE, SPACING, geometry="parallel")
    np.testing.assert_allclose(side, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_resampled_grids_keep_the_matrix(geometry: str) -> None:
    """The same field of view sampled twice as finely (CT and detector) gives the same matrix."""
    iso = np.array([60.0, 75.0, 66.0])
    view = lateral(80.0)
    coarse = projection_matrix(
        view, SHAPE, SPACING, iso, geometry=geometry, detector_shape=(20, 30), detector_pitch_mm=(6.0, 5.0)
    )
    fine = projection_matrix(
        view,
        [2 * n for n in SHAPE],
        [s / 2 for s in SPACING],
        iso + np.asarray(SPACING) / 4,  # the first voxel centre moves by a quarter of a coarse voxel
        geometry=geometry,
        detector_shape=(40, 60),
        detector_pitch_mm=(3.0, 2.5),
    )
    np.testing.assert_allclose(fine, coarse, atol=1e-9)


def test_cone_depth_and_parallel_limit() -> None:
    """s is the depth from the source in units of sod (1 at the isocentre, 1 +- extent / sod across the
    volume); the cone tends to the parallel matrix as the source recedes."""
    iso = np.array([60.0, 75.0, 66.0])
    view = lateral(75.0)
    cone = projection_matrix(view, SHAPE, SPACING, iso, geometry="cone", sod_mm=SOD_MM)
    iso_grid = np.append((2.0 * iso / np.asarray(SPACING) + 1.0) / np.asarray(SHAPE) - 1.0, 1.0)[[2, 1, 0, 3]]
    assert (cone @ iso_grid)[2] == pytest.approx(1.0)
    depths = (grid_points(SHAPE).reshape(-1, 4) @ cone.T)[:, 2]
    assert 0.7 < depths.min() < 0.95 and 1.05 < depths.max() < 1.3
    far = projection_matrix(view, SHAPE, SPACING, iso, geometry="cone", sod_mm=1e7)
    parallel = projection_matrix(view, SHAPE, SPACING, iso, geometry="parallel")
    np.testing.assert_allclose(far / far[2, 3], parallel, atol=1e-4)


@pytest.mark.parametrize("batched", [False, True])
def test_flips_follow_mirrored_data(batched: bool) -> None:
    """Mirroring the CT along W (and an image along its columns) with the matching matrix update reads the
    same pixels as before, mirrored."""
    image = torch.rand(SHAPE[0], SHAPE[2], generator=torch.Generator().manual_seed(0))
    matrix = projection_matrix(AP, SHAPE, SPACING, np.array([60.0, 75.0, 66.0]), sod_mm=SOD_MM)
    wrap = (lambda m: torch.as_tensor(m)[None].repeat(2, 1, 1)) if batched else (lambda m: m)
    unwrap = (lambda m: np.asarray(m[1])) if batched else np.asarray
    reference = backproject(image, matrix, SHAPE)
    mirrored_ct = backproject(image, unwrap(flip_volume_x(wrap(matrix))), SHAPE)
    torch.testing.assert_close(mirrored_ct, reference.flip(-1))
    both = backproject(image.flip(-1), unwrap(flip_image_columns(flip_volume_x(wrap(matrix)))), SHAPE)
    torch.testing.assert_close(both, reference.flip(-1))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="geometry 'fan'"):
        projection_matrix(AP, SHAPE, SPACING, geometry="fan")
    with pytest.raises(ValueError, match="isocentre"):
        projection_matrix(AP, SHAPE, SPACING, [0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="sod_mm"):
        projection_matrix(AP, SHAPE, SPACING, sod_mm=0.0)
    with pytest.raises(ValueError, match="spacing"):
        projection_matrix(AP, SHAPE, (1.0, 0.0, 1.0))


# ------------------------------------------------------------------------------------- recorded geometry


def recorded_attrs(geometry: str, detector_shape: tuple[int, int] | None = None) -> dict:
    """Attributes as the preparation pipeline writes them: spacing, isocentre and the renderer's provenance of
    the views it rendered (``drr.`` prefix)."""
    renderer = DRRRenderer(
        DRRConfig(geometry=geometry, sod_mm=SOD_MM, sid_mm=2 * SOD_MM, detector_shape=detector_shape)
    )
    renderer.render_views(torch.zeros(SHAPE), SPACING, RECORDED_ISO_MM, build_views(RECORDED_ANGLES))
    attrs = {f"drr.{key}": value for key, value in renderer.geometry_attrs().items()}
    return attrs | {"spacing_mm": list(SPACING), "isocenter_mm": RECORDED_ISO_MM.tolist(), "xray_mode": "aligned"}


@pytest.fixture
def fresh_log_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which once-per-process warnings were already logged."""
    monkeypatch.setattr(projection_module, "_logged_once", set())


@pytest.mark.parametrize(("geometry", "detector_shape"), [("cone", None), ("parallel", (24, 30))])
@pytest.mark.parametrize("angle", RECORDED_ANGLES)
def test_recorded_geometry_rebuilds_the_rendered_views(
    geometry: str, detector_shape: tuple[int, int] | None, angle: float
) -> None:
    attrs = recorded_attrs(geometry, detector_shape)
    ap, side = triplet_projection_matrices(attrs, SHAPE, angle, where="case.h5")
    options = {"geometry": geometry, "sod_mm": SOD_MM, "detector_shape": detector_shape}
    np.testing.assert_allclose(ap, projection_matrix(AP, SHAPE, SPACING, RECORDED_ISO_MM, **options))
    np.testing.assert_allclose(side, projection_matrix(lateral(angle), SHAPE, SPACING, RECORDED_ISO_MM, **options))
    other = next(a for a in RECORDED_ANGLES if a != angle)
    assert not np.allclose(side, triplet_projection_matrices(attrs, SHAPE, other)[1])


def test_files_without_geometry_get_the_aligned_parallel_views_and_say_so_once(
    fresh_log_flags: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=projection_module.__name__):
        first = triplet_projection_matrices({}, (20, 20, 20), 90.0, where="LIDC-0001.h5")
        second = triplet_projection_matrices({"schema_version": 1, "drr.geometry": "None"}, SHAPE, 90.0)
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["LIDC-0001.h5"]
    assert "aligned parallel" in caplog.records[0].getMessage()
    for ap, side in (first, second):
        np.testing.assert_allclose(ap, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)
        np.testing.assert_allclose(side, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)
    tilted = triplet_projection_matrices({"spacing_mm": list(SPACING)}, SHAPE, 75.0)[1]
    np.testing.assert_allclose(tilted, projection_matrix(lateral(75.0), SHAPE, SPACING, geometry="parallel"))


def test_paper_mode_files_warn_once(fresh_log_flags: None, caplog: pytest.LogCaptureFixture) -> None:
    attrs = recorded_attrs("cone") | {"xray_mode": "paper"}
    with caplog.at_level(logging.WARNING, logger=projection_module.__name__):
        for _ in range(2):
            triplet_projection_matrices(attrs, SHAPE, 90.0, where="paper.h5")
    assert len(caplog.records) == 1 and "not record" in caplog.records[0].getMessage()


@pytest.mark.parametrize(("missing", "message"), [("spacing_mm", "'spacing_mm'"), ("isocenter_mm", "no isocentre")])
def test_incomplete_recorded_geometry_names_the_file(missing: str, message: str) -> None:
    attrs = {k: v for k, v in recorded_attrs("cone").items() if k != missing and not k.startswith("drr.isocenter")}
    if missing == "spacing_mm":
        attrs["isocenter_mm"] = RECORDED_ISO_MM.tolist()
    with pytest.raises(ValueError, match=rf"broken\.h5: .*{message}"):
        triplet_projection_matrices(attrs, SHAPE, 90.0, where="broken.h5")
