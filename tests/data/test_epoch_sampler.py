"""The per-epoch training order and per-item draws that make a resumed run repeat the uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import torch

from x2ct.data.augment import AugmentConfig
from x2ct.data.dataset import X2CTDataset
from x2ct.data.epoch_sampler import EpochIndex, EpochSampler

N_ITEMS = 10
NOISY = AugmentConfig(flip_lr=0.5, xray_noise_std=0.05)


def order(sampler: EpochSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    items = list(sampler)
    assert all(isinstance(item, EpochIndex) and item.epoch == epoch for item in items)
    return [item.index for item in items]


def test_the_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    first, again = EpochSampler(range(N_ITEMS), seed=3), EpochSampler(range(N_ITEMS), seed=3)
    assert sorted(order(first, 0)) == list(range(N_ITEMS))
    assert order(first, 1) == order(again, 1)  # a fresh sampler (a resumed run) at epoch 1 repeats epoch 1
    assert order(first, 0) != order(first, 1)
    assert order(first, 0) != order(EpochSampler(range(N_ITEMS), seed=4), 0)


def test_skip_in_epoch_drops_the_first_indices_of_that_epoch_once() -> None:
    sampler = EpochSampler(range(N_ITEMS), seed=0)
    full = order(sampler, 2)
    sampler.skip_in_epoch(2, 3)
    assert order(sampler, 1) == order(EpochSampler(range(N_ITEMS), seed=0), 1)  # another epoch: untouched
    assert order(sampler, 2) == full[3:] and len(sampler) == N_ITEMS
    assert order(sampler, 2) == full  # only once


def test_ranks_share_out_the_epoch() -> None:
    shares = [order(EpochSampler(range(N_ITEMS), seed=0, num_replicas=2, rank=r), 0) for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == list(range(N_ITEMS))


def test_an_item_of_an_epoch_draws_the_same_in_any_dataset_copy(tiny_triplets: Path) -> None:
    """Augmentation and lateral-angle draws of EpochIndex items depend on (seed, epoch, index) only: not on the
    process, on what was read before, or on the global torch seed."""

    def dataset(seed: int = 0) -> X2CTDataset:
        return X2CTDataset(tiny_triplets, ["case00", "case01"], cube=32, augment=NOISY, seed=seed)

    first = dataset()
    reference = first[EpochIndex(1, 5)]["xray1"]
    first[EpochIndex(0, 5)]
    torch.manual_seed(123)
    assert torch.equal(dataset()[EpochIndex(1, 5)]["xray1"], reference)
    assert torch.equal(first[EpochIndex(1, 5)]["xray1"], reference)
    assert not torch.equal(first[EpochIndex(1, 6)]["xray1"], reference)  # the next epoch draws anew
    assert not torch.equal(dataset(seed=1)[EpochIndex(1, 5)]["xray1"], reference)
