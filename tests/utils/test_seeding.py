"""Derived seeds and the global random states saved with checkpoints."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from x2ct.utils.seeding import derived_seed, global_random_state, seed_global_generators, set_global_random_state


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand())  # noqa: NPY002, float(torch.rand(()))


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derived_seed(0, 1) == derived_seed(0, 1)
    assert len({derived_seed(0, 1), derived_seed(1, 0), derived_seed(0, 2), derived_seed(0, 1, 0)}) == 4
    assert 0 <= derived_seed(2**40, 7) < 2**63


def test_global_random_state_round_trips_through_a_weights_only_checkpoint() -> None:
    seed_global_generators(derived_seed(5))
    draws()
    buffer = io.BytesIO()
    torch.save({"state": global_random_state()}, buffer)
    expected = draws()
    seed_global_generators(0)
    buffer.seek(0)
    set_global_random_state(torch.load(buffer, weights_only=True)["state"])
    assert draws() == expected
