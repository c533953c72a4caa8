"""The training order: a seeded permutation per epoch whose items carry their epoch, so that every random draw of an
item (augmentation, lateral angle) derives from (seed, epoch, index) and a resumed run repeats the uninterrupted one.

:class:`EpochSampler` is a :class:`~torch.utils.data.DistributedSampler` (one replica by default): Lightning keeps it
under DDP instead of adding its own, and calls its ``set_epoch`` before every epoch. It yields
:class:`EpochIndex` tuples, which :class:`x2ct.data.dataset.X2CTDataset` accepts beside plain indices; because the
epoch travels with each index, DataLoader worker processes (persistent or not) need no shared state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import NamedTuple

from torch.utils.data import DistributedSampler


class EpochIndex(NamedTuple):
    """A dataset index and the training epoch it is drawn in."""

    index: int
    epoch: int


class EpochSampler(DistributedSampler):
    """Shuffled indices of ``dataset`` for this rank, permuted by ``seed + epoch`` as ``DistributedSampler`` does,
    yielded as :class:`EpochIndex`.

    ``skip_in_epoch(epoch, n)`` drops the first ``n`` indices of that epoch once (a run resumed in the middle of an
    epoch continues with the first sample it had not trained on); ``len()`` stays the whole epoch's count, as
    Lightning expects of a resumed loader.
    """

    def __init__(self, dataset: Sized, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._skip: tuple[int, int] | None = None  # (epoch, number of indices to drop)

    def skip_in_epoch(self, epoch: int, n_indices: int) -> None:
        """Drop the first ``n_indices`` of epoch ``epoch`` the next time that epoch is iterated."""
        self._skip = (int(epoch), int(n_indices)) if n_indices > 0 else None

    def __iter__(self) -> Iterator[EpochIndex]:  # type: ignore[override]
        indices = list(super().__iter__())
        if self._skip is not None and self._skip[0] == self.epoch:
            indices = indices[self._skip[1] :]
            self._skip = None
        return iter([EpochIndex(int(i), self.epoch) for i in indices])
