"""How a :class:`~topo.Trainer` runs its steps: in one process, or data parallel over a process group.

A strategy wraps the five places where training on several ranks differs from
training in one process, so that the loop itself is written once:

==========================  ==============================  ==================================================
step                        :class:`LocalStrategy`          :class:`DataParallelStrategy`
==========================  ==============================  ==================================================
start (seed, model)         the trainer's seed              rank 0's seed; rank 0's model broadcast to all
batch sharding              the whole batch                 this rank's strided share (:func:`~topo.distributed.shard`)
gradients                   as computed                     all-reduced, weighted by the shares
metric sums                 as computed                     summed over ranks
evolution                   ``step()``                      decided on rank 0, replayed on every rank, checked
who writes                  this process                    rank 0 (:attr:`is_main`); errors reach every rank
==========================  ==============================  ==================================================

:func:`strategy_for` picks the strategy of the current process: data parallel
inside an initialised ``torch.distributed`` group of several ranks, else local.

Examples
--------
>>> import torch
>>> s = strategy_for()
>>> type(s).__name__, s.is_main, s.shard(torch.arange(4))[0].tolist()
('LocalStrategy', True, [0, 1, 2, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["LocalStrategy", "DataParallelStrategy", "strategy_for"]


class LocalStrategy:
    """Training in one process: every step runs as written."""

    rank, world_size, is_main = 0, 1, True

    def agree(self, fn: Callable, *args, what: str, main_only: bool = False):
        """``fn(*args)``; ``what`` names the step in the errors of a distributed strategy."""
        return fn(*args)

    def start(self, model: nn.Module, seed: int) -> int:
        """The run's seed (a data-parallel run takes rank 0's and its model)."""
        return seed

    def check(self, model: nn.Module, where: str) -> None:
        """Verify that every rank holds the same model (nothing to compare in one process)."""

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Re-seed dropout at the start of ``epoch``: one process keeps one stream for the whole run."""

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The rows of the global batch ``idx`` this process trains on, and their share of the batch."""
        return idx, 1.0

    def reduce_gradients(self, model: nn.Module, weight: float) -> None:
        """Combine the gradients of the ranks (one process: they are complete already)."""

    def reduce(self, values: list) -> list:
        """Sums over ranks of the numbers ``values``."""
        return list(values)

    def eval_rows(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of an evaluation set this process scores (their sums are :meth:`reduce` d)."""
        return X, y

    def evolve(self, model: nn.Module, step: Callable[[], Any], optimizer, where: str) -> Any:
        """Run the evolution step ``step()``."""
        return step()

    def describe(self) -> dict:
        """What ``config.json`` records about the processes."""
        return {"nproc": 1}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DataParallelStrategy(LocalStrategy):
    """Data-parallel training over an initialised process group (see :mod:`topo.distributed`).

    Every rank takes its strided share of each global batch; gradients are
    all-reduced, weighted by the shares, so one step equals the single-process
    step on the whole batch; dropout is re-seeded per epoch and rank (a resume
    with the same number of ranks redraws the same masks); metric sums are over
    all ranks; evolution is decided on rank 0 and replayed on the others, then
    every rank's topology and values are checked against rank 0's; only rank 0
    writes, and a failure on one rank is raised on every rank.

    Parameters
    ----------
    info : topo.distributed.DistInfo
        This process's rank, world size and backend.
    """

    def __init__(self, info) -> None:
        self.info = info
        self.rank, self.world_size = int(info.rank), int(info.world_size)
        self.is_main = self.rank == 0

    def agree(self, fn: Callable, *args, what: str, main_only: bool = False):
        """``fn(*args)`` on every rank (on rank 0 only with ``main_only``); an error on one is raised on all."""
        from ..distributed import agree

        return agree(fn, *args, what=what, ranks="main" if main_only else "all")

    def start(self, model: nn.Module, seed: int) -> int:
        from ..distributed import allreduce_sum, broadcast_model

        seed = int(allreduce_sum([seed if self.is_main else 0])[0])  # rank 0's (seed=None draws one per rank)
        broadcast_model(model)  # one starting point, whatever each rank built
        return seed

    def check(self, model: nn.Module, where: str) -> None:
        from ..distributed import check_consistent

        check_consistent(model, values=True, where=where)

    def seed_epoch(self, seed: int, epoch: int) -> None:
        # Dropout masks differ across ranks as across the rows of one batch, and a resume with
        # the same ranks redraws them exactly.
        torch.manual_seed((seed * 1_000_003 + epoch * 7_919 + self.rank) % 2**63)

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        from ..distributed import shard

        mine = shard(idx, self.rank, self.world_size)
        return mine, mine.numel() / idx.numel()

    def reduce_gradients(self, model: nn.Module, weight: float) -> None:
        from ..distributed import allreduce_gradients

        # Each rank's mean loss weighs by its share: the sum is the global batch's gradient.
        allreduce_gradients(model, weight=weight)

    def reduce(self, values: list) -> list:
        from ..distributed import allreduce_sum

        return allreduce_sum(list(values)).tolist()

    def eval_rows(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return X[self.rank::self.world_size], y[self.rank::self.world_size]

    def evolve(self, model: nn.Module, step: Callable[[], Any], optimizer, where: str) -> Any:
        from ..distributed import broadcast_evolution, check_consistent

        # Rank 0 decides; the others replay its births and deaths. Then every rank proves it
        # holds rank 0's topology and values.
        result = broadcast_evolution(model, step, optimizer=optimizer, check=False)
        check_consistent(model, values=True, where=where)
        return result

    def describe(self) -> dict:
        return {"nproc": self.world_size, "dist_backend": self.info.backend}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size})"


def strategy_for() -> LocalStrategy:
    """:class:`DataParallelStrategy` inside a ``torch.distributed`` group of several ranks, else local."""
    from .settings import dist_info

    info = dist_info()
    return LocalStrategy() if info is None else DataParallelStrategy(info)
