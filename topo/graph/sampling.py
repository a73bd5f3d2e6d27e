"""Seeded sampling of distinct edge keys in O(edges) time and memory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError
from .alloc import empty
from .keyset import contains, dedupe, is_increasing, merge

__all__ = ["make_generator", "sample_keys"]

# Above this fraction of the key space, enumerating it (O(N) <= O(m / fraction))
# is cheaper than rejection sampling.
_DENSE_FRACTION = 0.25


def make_generator(seed=None) -> torch.Generator:
    """A CPU ``torch.Generator`` from an int seed, an existing generator, or ``None`` (fresh entropy)."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    if seed is None:
        g.seed()
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterTypeError(f"seed must be an int, a torch.Generator or None, got {seed!r}")
    else:
        g.manual_seed(int(seed))
    return g


def sample_keys(space: int, m: int, generator: torch.Generator,
                exclude: torch.Tensor | Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Draw ``m`` distinct integers uniformly from ``[0, space)`` minus ``exclude``, sorted.

    ``exclude`` must be sorted and unique, or a sequence of such arrays that are
    disjoint from each other (e.g. a layer's kept edges and its just-pruned ones:
    no merged copy of them is made). Memory is O(m + len(exclude)) unless the
    request covers a large fraction of the space, where enumerating the space
    costs no more than the answer itself.

    Examples
    --------
    >>> g = make_generator(0)
    >>> k = sample_keys(10**12, 5, g)
    >>> k.numel(), bool((k[1:] > k[:-1]).all())
    (5, True)
    """
    space, m = int(space), int(m)
    if not 0 <= space <= 2**63 - 1:
        raise TopologyError(f"key space {space} is outside [0, 2**63): edge keys are int64")
    parts = [] if exclude is None else [exclude] if isinstance(exclude, torch.Tensor) else list(exclude)
    for i, ex in enumerate(parts):
        # An unsorted or out-of-range exclude would make the merge/free count silently wrong; O(n_ex) to check.
        if not isinstance(ex, torch.Tensor) or ex.dtype != torch.int64 or ex.dim() != 1:
            what = f"{ex.dtype} {tuple(ex.shape)}" if isinstance(ex, torch.Tensor) else type(ex).__name__
            raise ParameterError(f"exclude must be a 1-D int64 tensor (or a sequence of them), got {what}")
        ex = parts[i] = ex.cpu()
        if ex.numel() and (int(ex[0]) < 0 or int(ex[-1]) >= space or not is_increasing(ex)):
            raise ParameterError(f"exclude must be sorted, unique keys in [0, {space})")
    parts = [ex for ex in parts if ex.numel()]
    n_ex = sum(int(ex.numel()) for ex in parts)
    free = space - n_ex
    if m < 0 or m > free:
        raise ParameterError(f"cannot draw {m} distinct edges from {free} free positions")
    if m == 0:
        return torch.empty(0, dtype=torch.int64)
    if m + n_ex > _DENSE_FRACTION * space:
        if n_ex:
            keep = torch.ones(space, dtype=torch.bool)
            for ex in parts:
                keep[ex] = False
            pool = keep.nonzero().squeeze(1)
        else:
            pool = None
        pick = torch.randperm(free, generator=generator)[:m]
        return torch.sort(pool[pick] if pool is not None else pick).values
    # Rejection sampling. The random stream is fixed (a draw of int(need * 1.1) + 16 keys per round, one
    # randperm to drop the surplus), and so are the keys it gives; the set work is done on sorted arrays:
    # sort the round's draw, drop keys of `exclude` by a merge walk (keyset.contains), drop repeats, merge
    # with the keys kept so far. That is torch.unique's result without its full re-sort of every round.
    keys = torch.empty(0, dtype=torch.int64)
    while keys.numel() < m:
        need = m - keys.numel()
        draw = torch.randint(0, space, (int(need * 1.1) + 16,), generator=generator, dtype=torch.int64,
                             out=empty(int(need * 1.1) + 16, torch.int64))  # numpy memory: alloc.py
        draw = torch.from_numpy(np.sort(draw.numpy()))  # numpy's sort is ~2x torch's on CPU; same values
        for ex in parts:
            draw = torch.from_numpy(draw.numpy()[~contains(ex, draw).numpy()])
        draw = dedupe(draw)
        keys = draw if keys.numel() == 0 else dedupe(merge(keys, draw)[0])
    if keys.numel() > m:
        # Drop a random subset, not the largest keys: the same randperm as ever, applied as a mask so the
        # kept keys stay sorted without a sort.
        pick = torch.randperm(keys.numel(), generator=generator, out=empty(keys.numel(), torch.int64))[:m]
        mask = np.zeros(keys.numel(), dtype=bool)
        mask[pick.numpy()] = True
        keys = torch.from_numpy(keys.numpy()[mask])
    return keys
