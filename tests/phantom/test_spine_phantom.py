"""Tests of the procedural spine phantom (x2ct.phantom)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from x2ct.io.volume import Volume, canonical_affine
from x2ct.phantom import LEVEL_ANATOMY, PhantomConfig, TissueHU, level_label, make_phantom
from x2ct.phantom.soft_tissue import Torso, erector_spinae
from x2ct.phantom.vertebra import POSTERIOR_FLATTENING

# A small, quiet, upright phantom: 2 mm voxels, no noise, no random pose, fixed tissue values.
SMALL = PhantomConfig(
    level_range=("L1", "L4"),
    n_levels=(2, 3),
    inplane_spacing_mm=(2.0, 2.0),
    slice_spacing_mm=(2.0, 2.0),
    fov_mm=(200.0, 120.0),
    size_scale=(1.0, 1.0),
    curvature_scale=(0.0, 0.0),
    cobb_deg=(0.0, 0.0),
    tilt_deg=0.0,
    shift_mm=0.0,
    torso_radius_h_mm=(90.0, 90.0),
    torso_radius_w_mm=(140.0, 140.0),
    fat_mm=(15.0, 15.0),
    noise_std_hu=(0.0, 0.0),
    gas_pockets=(0, 0),
    bone_hu_jitter=0.0,
)


def _voxel(vol: Volume, point_mm: np.ndarray | list[float]) -> tuple[int, int, int]:
    idx = np.round(np.asarray(point_mm) / np.asarray(vol.spacing)).astype(int)
    return int(idx[0]), int(idx[1]), int(idx[2])


def _level_centroids_mm(vol: Volume) -> dict[int, np.ndarray]:
    assert vol.labels is not None
    spacing = np.asarray(vol.spacing)
    return {int(lab): np.argwhere(vol.labels == lab).mean(axis=0) * spacing for lab in np.unique(vol.labels) if lab > 0}


def test_same_seed_gives_identical_volume_and_different_seeds_differ() -> None:
    a, b = make_phantom(3, SMALL), make_phantom(3, SMALL)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.meta == b.meta
    assert a.case_id == "phantom_0003"  # the format of the phantom source's ids
    noisy = PhantomConfig()
    c, d, e = make_phantom(11, noisy), make_phantom(11, noisy), make_phantom(12, noisy)
    np.testing.assert_array_equal(c.hu, d.hu)
    assert c.shape != e.shape or not np.array_equal(c.hu, e.hu)
    assert (c.meta["levels"], c.spacing) != (e.meta["levels"], e.spacing)


def test_output_types_spacing_and_affine() -> None:
    vol = make_phantom(5, case_id="case_a")
    cfg = PhantomConfig()
    assert vol.case_id == "case_a"
    assert vol.hu.dtype == np.float32 and vol.labels is not None and vol.labels.dtype == np.int16
    sd, sh, sw = vol.spacing
    assert cfg.slice_spacing_mm[0] <= sd <= cfg.slice_spacing_mm[1]
    assert cfg.inplane_spacing_mm[0] <= sh <= cfg.inplane_spacing_mm[1] and sh == sw
    np.testing.assert_allclose(vol.affine, canonical_affine(vol.spacing))
    assert vol.meta["spacing"] == list(vol.spacing) and vol.meta["shape"] == list(vol.shape)
    # the in-plane field of view is the configured one
    np.testing.assert_allclose(np.asarray(vol.shape[1:]) * sh, cfg.fov_mm, atol=sh)
    spacings = {make_phantom(s).spacing for s in range(3)}
    assert len(spacings) == 3


def test_labels_are_the_chosen_levels_ordered_cranio_caudally() -> None:
    for seed in range(4):
        vol = make_phantom(seed, replace(SMALL, level_range=("T9", "L5"), n_levels=(3, 6)))
        ids = vol.meta["label_ids"]
        assert ids == [level_label(lv) for lv in vol.meta["levels"]]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous run
        assert 3 <= len(ids) <= 6
        assert sorted(int(x) for x in np.unique(vol.labels) if x > 0) == ids
        centroids = _level_centroids_mm(vol)
        d_of = [centroids[i][0] for i in ids]
        assert all(np.diff(d_of) > 0), "smaller label ids must lie at smaller D (more superior)"


def test_default_pool_is_t8_to_l5_with_five_to_eight_levels() -> None:
    for seed in range(6):
        vol = make_phantom(seed)
        assert 5 <= len(vol.meta["levels"]) <= 8
        assert all(level_label("T8") <= i <= level_label("L5") for i in vol.meta["label_ids"])


def test_tissue_hu_at_known_places() -> None:
    cfg = replace(
        SMALL, inplane_spacing_mm=(1.0, 1.0), slice_spacing_mm=(1.0, 1.0), n_levels=(2, 2), cortical_shell_mm=(2.0, 2.0)
    )
    vol = make_phantom(0, cfg)
    hu, meta = vol.hu, vol.meta
    levels, centres = meta["levels"], [np.asarray(c) for c in meta["centres_mm"]]
    ranges = cfg.hu
    a = LEVEL_ANATOMY[levels[0]]
    c = centres[0]
    cortical, cancellous = meta["bone_hu"][0]

    def inside(value: float, r: tuple[float, float]) -> bool:
        return r[0] - 1e-3 <= value <= r[1] + 1e-3

    assert inside(hu[_voxel(vol, c)], ranges.cancellous) and hu[_voxel(vol, c)] == pytest.approx(cancellous, abs=1)
    # anterior wall of the body: the profile from the centre forward peaks at the cortical value
    d, h, w = _voxel(vol, c)
    front = round((c[1] - a.body_depth / 2 - 3) / vol.spacing[1])
    wall_peak = float(hu[d, front:h, w].max())
    assert 700 <= wall_peak <= 1500 and wall_peak == pytest.approx(cortical, rel=0.03)
    disc = hu[_voxel(vol, (centres[0] + centres[1]) / 2)]
    assert inside(disc, ranges.disc) and disc == pytest.approx(meta["hu"]["disc"], abs=1)
    canal_centre = c + np.array([0.0, a.body_depth * (0.5 - POSTERIOR_FLATTENING) + a.canal_depth / 2, 0.0])
    assert inside(hu[_voxel(vol, canal_centre)], ranges.canal)
    t = meta["torso"]
    torso = Torso(t["centre_h_mm"], t["centre_w_mm"], t["radius_h_mm"], t["radius_w_mm"], t["fat_mm"])
    tube = erector_spinae(a, _pose_at(c), torso)[0].shapes[0]  # type: ignore[attr-defined]
    assert inside(hu[_voxel(vol, (tube.start + tube.end) / 2)], ranges.muscle)
    back_fat = [c[0], torso.centre_h + torso.radius_h - torso.fat_mm / 2, torso.centre_w]
    assert inside(hu[_voxel(vol, back_fat)], ranges.fat)
    belly = [c[0], torso.centre_h - torso.radius_h / 2, torso.centre_w]
    assert inside(hu[_voxel(vol, belly)], ranges.soft_tissue)
    assert hu[0, 0, 0] == ranges.air and hu[-1, -1, -1] == ranges.air
    # soft edges: the wall profile has partial-volume values besides the plateaus of soft tissue, cortex
    # and cancellous bone
    profile = hu[d, front:h, w]
    plateaus = np.array([meta["hu"]["soft_tissue"], cortical, cancellous])
    off_plateau = np.min(np.abs(profile[:, None] - plateaus[None, :]), axis=1) > 20.0
    assert np.any(off_plateau & (profile > plateaus[0]) & (profile < cortical))


def _pose_at(centre: np.ndarray):  # an upright, unrotated pose at a body centre
    from x2ct.phantom.centreline import VertebraPose

    return VertebraPose(centre, np.eye(3), 0.0, 0.0, 0.0, 0.0)


def test_body_is_anterior_and_spinous_process_posterior() -> None:
    vol = make_phantom(1, replace(SMALL, inplane_spacing_mm=(1.0, 1.0), slice_spacing_mm=(1.0, 1.0)))
    assert vol.labels is not None
    for lab, centre in zip(vol.meta["label_ids"], vol.meta["centres_mm"], strict=True):
        d, h, w = _voxel(vol, centre)
        parts, n = ndimage.label(vol.labels[:, :, w] == lab)
        assert n >= 2, "mid-sagittal section must show the body and the posterior elements apart"
        body = parts[d, h] - 1
        assert body >= 0, "the body centre must be labelled"
        mean_h = [np.argwhere(parts == k)[:, 1].mean() for k in range(1, n + 1)]
        max_h = [np.argwhere(parts == k)[:, 1].max() for k in range(1, n + 1)]
        assert mean_h[body] == min(mean_h), "the body must be the most anterior part"
        assert int(np.argmax(max_h)) != body, "the spinous process must reach further back than the body"
        assert max(max_h) * vol.spacing[1] > centre[1] + 50.0
        assert mean_h[body] * vol.spacing[1] == pytest.approx(centre[1], abs=3.0)


def test_spine_sits_in_the_posterior_half_of_the_torso() -> None:
    for seed in range(3):
        vol = make_phantom(seed, replace(PhantomConfig(), noise_std_hu=(0.0, 0.0), gas_pockets=(0, 0)))
        centroid = vol.mask_centroid_mm()
        d, _, w = _voxel(vol, centroid)
        inside = np.flatnonzero(vol.hu[d, :, w] > -500)
        torso_mid_h = (inside[0] + inside[-1]) / 2 * vol.spacing[1]
        assert centroid[1] > torso_mid_h + 5.0
        # the spinous processes stay under the skin
        assert vol.labels is not None
        assert np.argwhere(vol.labels > 0)[:, 1].max() < inside[-1]


def test_cobb_zero_gives_a_straight_coronal_centreline() -> None:
    cfg = replace(SMALL, level_range=("T9", "L5"), n_levels=(7, 7), curvature_scale=(1.0, 1.0))
    vol = make_phantom(2, cfg)
    w = [c[2] for c in _level_centroids_mm(vol).values()]
    assert np.ptp(w) < 0.5
    assert vol.meta["cobb_deg"] == 0 and vol.meta["scoliosis_convexity"] == "none"


def test_cobb_25_deviates_laterally_by_the_expected_amount() -> None:
    cfg = replace(
        SMALL,
        level_range=("T9", "L5"),
        n_levels=(7, 7),
        cobb_deg=(25.0, 25.0),
        rotation_per_cobb=0.0,
        inplane_spacing_mm=(1.0, 1.0),
    )
    vol = make_phantom(2, cfg)
    centres = np.asarray(vol.meta["centres_mm"])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    half_cobb = np.radians(25.0) / 2
    u = np.linspace(0.0, arc[-1], 4001)
    lateral = np.concatenate([[0.0], np.cumsum(np.diff(u) * np.sin(half_cobb * np.cos(np.pi * u[1:] / arc[-1])))])
    expected = np.interp(arc, u, lateral)
    sign = 1.0 if vol.meta["scoliosis_convexity"] == "left" else -1.0
    measured = np.array([c[2] for c in _level_centroids_mm(vol).values()])
    measured = measured - (measured[0] + measured[-1]) / 2
    assert np.max(np.abs(expected)) > 10.0
    np.testing.assert_allclose(measured, sign * expected, atol=1.5)
    # the end vertebrae are tilted against each other by the Cobb angle
    assert abs(vol.meta["coronal_deg"][0] - vol.meta["coronal_deg"][-1]) == pytest.approx(25.0)


def test_scoliotic_rotation_turns_the_body_toward_the_convexity() -> None:
    cfg = replace(
        SMALL,
        level_range=("T9", "L5"),
        n_levels=(7, 7),
        cobb_deg=(25.0, 25.0),
        rotation_per_cobb=0.4,
        inplane_spacing_mm=(1.0, 1.0),
        ribs=False,
    )
    vol = make_phantom(2, cfg)
    assert vol.labels is not None
    rotation = np.asarray(vol.meta["axial_rotation_deg"])
    apex = int(np.argmax(np.abs(rotation)))
    assert abs(rotation[apex]) == pytest.approx(0.4 * 25.0)
    centre = np.asarray(vol.meta["centres_mm"][apex])
    voxels = np.argwhere(vol.labels == vol.meta["label_ids"][apex]) * np.asarray(vol.spacing)
    anterior = voxels[voxels[:, 1] < centre[1] - 5.0].mean(axis=0)  # front of the body
    posterior = voxels[voxels[:, 1] > centre[1] + 45.0].mean(axis=0)  # spinous process only
    convex = 1.0 if vol.meta["scoliosis_convexity"] == "left" else -1.0
    assert convex * (anterior[2] - posterior[2]) > 0, "the body turns toward the convex side"
    angle = np.degrees(np.arctan2(anterior[2] - posterior[2], posterior[1] - anterior[1]))
    assert abs(angle) == pytest.approx(abs(rotation[apex]), abs=3.0)


def test_noise_level_matches_the_configuration() -> None:
    vol = make_phantom(0, replace(SMALL, noise_std_hu=(12.0, 12.0)))
    air = vol.hu[:, :5, :].ravel()  # in front of the torso
    assert air.mean() == pytest.approx(-1000.0, abs=1.0)
    assert air.std() == pytest.approx(12.0, rel=0.05)
    assert vol.meta["noise_std_hu"] == 12.0


def test_ribs_and_gas_pockets_are_optional() -> None:
    thoracic = replace(SMALL, level_range=("T9", "T11"), n_levels=(3, 3))
    with_ribs, without = make_phantom(0, thoracic), make_phantom(0, replace(thoracic, ribs=False))
    assert with_ribs.labels is not None and without.labels is not None

    def bone_outside_labels(vol: Volume) -> int:
        return int(np.count_nonzero((vol.hu > 500) & (vol.labels == 0)))

    assert bone_outside_labels(with_ribs) > 100 and bone_outside_labels(without) == 0
    np.testing.assert_array_equal(with_ribs.labels, without.labels)  # ribs are not labelled
    gassy = make_phantom(0, replace(SMALL, gas_pockets=(2, 2)))
    torso_inside = ndimage.binary_erosion(gassy.hu > -500, iterations=2)
    holes = ndimage.binary_fill_holes(torso_inside) & ~torso_inside
    assert (
        gassy.meta["gas_pockets"] == 2
        and np.count_nonzero(gassy.hu < -800) > np.count_nonzero(make_phantom(0, SMALL).hu < -800)
        and holes.any()
    )


def test_cervical_levels_build() -> None:
    vol = make_phantom(0, replace(SMALL, level_range=("C1", "C7"), n_levels=(7, 7), ribs=False))
    assert sorted(int(x) for x in np.unique(vol.labels) if x > 0) == list(range(1, 8))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"level_range": ("T8", "X5")}, "unknown vertebra level 'X5'"),
        ({"level_range": ("L5", "T8")}, "is empty"),
        ({"n_levels": (0, 0)}, "empty"),
        ({"n_levels": (5, 12)}, "at most 10 levels"),
        ({"cobb_deg": (0.0, 95.0)}, "cobb_deg"),
        ({"slice_spacing_mm": (2.0, 1.0)}, "reversed"),
        ({"inplane_spacing_mm": (0.0, 1.0)}, "inplane_spacing_mm"),
        ({"noise_std_hu": (-1.0, 2.0)}, "noise_std_hu"),
        ({"torso_radius_h_mm": (90.0, 130.0)}, "does not fit"),
        ({"edge_mm": 0.0}, "edge_mm"),
        ({"tilt_deg": float("nan")}, "tilt_deg"),
    ],
)
def test_invalid_config_raises_clear_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhantomConfig(**overrides)


def test_invalid_hu_and_seed_raise() -> None:
    with pytest.raises(ValueError, match=r"hu\.cortical"):
        TissueHU(cortical=(1500.0, 700.0))
    with pytest.raises(ValueError, match="seed"):
        make_phantom(-1)
    with pytest.raises(TypeError, match="PhantomConfig"):
        make_phantom(0, {"n_levels": (2, 2)})  # type: ignore[arg-type]
