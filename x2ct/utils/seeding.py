"""Seeds derived from several integers, and the process-wide random states (python, numpy, torch) as plain data.

``derived_seed(seed, epoch, ...)`` lets every epoch (and every item of an epoch) draw its own stream from the run's
seed alone, so that a run resumed at an epoch boundary draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

SEED_WORDS = 2  # 32-bit words of a SeedSequence combined into one seed
WORD_BITS = 32
TORCH_SEED_BITS = 63  # torch.Generator.manual_seed takes values below 2**64; numpy's legacy seed below 2**32
NUMPY_LEGACY_SEED_MODULUS = 2**32
# First part of a derived seed, naming what it seeds, so that two uses never share a stream.
GLOBAL_STREAM = 0  # python / numpy / torch global generators of one epoch (x2ct.callbacks.random_state)
ITEM_STREAM = 1  # one training item's draws in one epoch (x2ct.data.dataset)


def derived_seed(*parts: int) -> int:
    """A seed in [0, 2**63) mixed from non-negative integers (NumPy's SeedSequence; the count of parts is mixed in
    too, so ``(0, 1)`` and ``(0, 1, 0)`` differ): different tuples give unrelated streams; the same tuple always
    gives the same seed, on any machine."""
    words = np.random.SeedSequence([len(parts), *(int(p) for p in parts)]).generate_state(SEED_WORDS, np.uint32)
    value = (int(words[0]) << WORD_BITS) | int(words[1])
    return value & ((1 << TORCH_SEED_BITS) - 1)


def seed_global_generators(seed: int) -> None:
    """Seed python's ``random``, NumPy's legacy global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % NUMPY_LEGACY_SEED_MODULUS)  # noqa: NPY002 (the global generator itself)
    torch.manual_seed(seed)


def global_random_state() -> dict[str, Any]:
    """The process-wide random states as tensors, lists and ints (loadable by ``torch.load(weights_only=True)``):
    ``python`` (version, state words, gauss), ``numpy`` (MT19937 key as int64 tensor, position, has_gauss,
    cached_gaussian), ``torch`` (uint8 tensor), ``cuda`` (one uint8 tensor per device; empty without CUDA)."""
    version, words, gauss = random.getstate()
    _, key, position, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (the global generator itself)
    return {
        "python": [version, list(words), gauss],
        "numpy": [torch.from_numpy(key.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def set_global_random_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_random_state` returned (CUDA states only when as many devices are visible)."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    key, position, has_gauss, cached = state["numpy"]
    key_words = np.asarray(key, dtype=np.int64).astype(np.uint32)
    np.random.set_state(("MT19937", key_words, position, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
