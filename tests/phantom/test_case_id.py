"""Phantom case ids: one format for the phantom generator and the phantom source; older ids still read."""

from __future__ import annotations

import numpy as np
import pytest

from x2ct.phantom import PhantomConfig, make_phantom, phantom_case_id, phantom_number
from x2ct.sources.base import CaseRef
from x2ct.sources.phantom import PhantomSource, phantom_case_seed

TINY = PhantomConfig(
    level_range=("L1", "L3"), n_levels=(2, 2), inplane_spacing_mm=(4.0, 4.0), slice_spacing_mm=(4.0, 4.0)
)


def test_generator_and_source_name_cases_alike() -> None:
    source = PhantomSource(n_cases=3, seed=5, phantom=TINY)
    assert [ref.case_id for ref in source.list_cases()] == ["phantom_0000", "phantom_0001", "phantom_0002"]
    assert make_phantom(2, TINY).case_id == phantom_case_id(2) == "phantom_0002"
    assert phantom_case_id(123456) == "phantom_123456"


def test_ids_round_trip_and_older_padding_reads() -> None:
    assert [phantom_number(phantom_case_id(n)) for n in (0, 7, 10000)] == [0, 7, 10000]
    assert phantom_number("phantom_00003") == 3  # make_phantom's former default id
    source = PhantomSource(n_cases=4, seed=5, phantom=TINY)
    legacy = source.load(CaseRef(case_id="phantom_00003", ct_path=None, mask_path=None))
    current = source.load(CaseRef(case_id="phantom_0003", ct_path=None, mask_path=None))
    np.testing.assert_array_equal(legacy.hu, current.hu)
    np.testing.assert_array_equal(current.hu, make_phantom(phantom_case_seed(5, 3), TINY).hu)
    for bad in ("case_0001", "phantom_", "phantom_x1"):
        with pytest.raises(ValueError, match=bad):
            phantom_number(bad)
    with pytest.raises(ValueError, match="non-negative"):
        phantom_case_id(-1)
