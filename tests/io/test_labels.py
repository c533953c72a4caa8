"""Level names, level-list parsing and label-scheme conversion."""

from __future__ import annotations

import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io.labels import (
    ANATOMICAL_ORDER,
    LEVEL_IDS,
    level_id,
    level_name,
    level_names,
    parse_levels,
    to_project_labels,
)


def test_level_ids_follow_ctspine1k_numbering() -> None:
    assert [level_id(n) for n in ("C1", "C7", "T1", "T12", "L1", "L5", "L6", "T13")] == [1, 7, 8, 19, 20, 24, 25, 28]
    assert level_id(" l3 ") == 22
    assert level_name(20) == "L1"
    assert level_name(28) == "T13"
    assert len(LEVEL_IDS) == len(ANATOMICAL_ORDER) == 26
    assert all(level_name(level_id(n)) == n for n in ANATOMICAL_ORDER)


@pytest.mark.parametrize("bad", ["L7", "X1", "", "C0"])
def test_unknown_level_name_raises(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown vertebra level"):
        level_id(bad)


def test_level_name_of_non_level_id_raises() -> None:
    with pytest.raises(ValueError, match="not a vertebra level"):
        level_name(26)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("L1-L5", (20, 21, 22, 23, 24)),
        (["L1", "L2"], (20, 21)),
        ("L2,L1", (20, 21)),
        ("T12 - L1, c1", (1, 19, 20, 28)),  # the range T12-L1 passes through T13
        ("L1..L2; L4", (20, 21, 23)),
        (["C6-T1", "L5:L6"], (6, 7, 8, 24, 25)),
        ("L3", (22,)),
    ],
)
def test_parse_levels(spec: object, expected: tuple[int, ...]) -> None:
    assert parse_levels(spec) == expected  # type: ignore[arg-type]


def test_parse_levels_none_means_all() -> None:
    assert parse_levels(None) is None


@pytest.mark.parametrize("bad", ["L5-L1", "L1-", "L1-L2-L3", "", [], "L9"])
def test_parse_levels_rejects_bad_lists(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_levels(bad)  # type: ignore[arg-type]


def test_level_names_are_in_anatomical_order() -> None:
    assert level_names([21, 28, 20, 19, 1, 26]) == ["C1", "T12", "T13", "L1", "L2", "26"]


def test_ctspine1k_scheme_keeps_ids() -> None:
    labels = np.array([[0, 1, 25, 28]], dtype=np.uint8)
    out = to_project_labels(labels, "ctspine1k")
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, labels)


def test_ctspine1k_scheme_rejects_foreign_ids() -> None:
    with pytest.raises(CaseError, match=r"m\.nii.*totalsegmentator"):
        to_project_labels(np.array([0, 50]), "ctspine1k", source="m.nii")


def test_totalsegmentator_scheme_maps_vertebrae_and_drops_the_rest() -> None:
    # 27 L5, 31 L1, 32 T12, 44 C7, 50 C1; 26 S1, 25 sacrum, 5 an organ, 51 beyond the vertebrae -> 0
    labels = np.array([0, 27, 31, 32, 44, 50, 26, 25, 5, 51, 104])
    out = to_project_labels(labels, "totalsegmentator")
    np.testing.assert_array_equal(out, [0, 24, 20, 19, 7, 1, 0, 0, 0, 0, 0])
    assert out.dtype == np.int16


def test_unknown_scheme_and_float_labels_raise() -> None:
    with pytest.raises(ValueError, match="unknown label scheme"):
        to_project_labels(np.zeros(3, dtype=np.int16), "verse2")
    with pytest.raises(CaseError, match="integer"):
        to_project_labels(np.zeros(3, dtype=np.float32))
