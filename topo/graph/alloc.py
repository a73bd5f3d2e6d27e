"""Large CPU tensors in numpy-allocated memory, which Linux backs with transparent huge pages.

numpy asks the kernel for huge pages on large allocations (``madvise(MADV_HUGEPAGE)``);
torch's CPU allocator does not. Where THP is in ``madvise`` mode (the default of many
distributions, and of the development VM) a fresh 80 MB torch tensor costs about 60 ms
to touch for the first time (20,000 page faults of 4 KiB) against about 15 ms in numpy
memory, and each evolution step writes a dozen such arrays. The tensors returned here
are ordinary torch tensors sharing that memory (``torch.from_numpy``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["empty", "zeros", "copy"]

_RAW = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def empty(shape, dtype: torch.dtype) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype)`` on the CPU, in numpy memory (any real or bool dtype).

    Examples
    --------
    >>> empty((2, 3), torch.bfloat16).shape, empty(4, torch.bool).dtype
    (torch.Size([2, 3]), torch.bool)
    """
    size = torch.empty(0, dtype=dtype).element_size()
    if dtype.is_complex or size not in _RAW:
        return torch.empty(shape, dtype=dtype)
    return torch.from_numpy(np.empty(shape, dtype=_RAW[size])).view(dtype)


def zeros(shape, dtype: torch.dtype) -> torch.Tensor:
    """``torch.zeros(shape, dtype=dtype)`` on the CPU, in numpy memory (all-zero bits are 0 in every dtype)."""
    size = torch.empty(0, dtype=dtype).element_size()
    if dtype.is_complex or size not in _RAW:
        return torch.zeros(shape, dtype=dtype)
    return torch.from_numpy(np.zeros(shape, dtype=_RAW[size])).view(dtype)


def copy(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A CPU copy of ``t`` (detached, contiguous), in ``dtype`` if given, in numpy memory.

    Examples
    --------
    >>> a = torch.arange(3)
    >>> b = copy(a, torch.float32); b[0] = 7; a.tolist(), b.tolist()
    ([0, 1, 2], [7.0, 1.0, 2.0])
    """
    t = t.detach()
    out = empty(tuple(t.shape), dtype or t.dtype)
    out.copy_(t)  # one pass; copy_ converts dtype and device as it goes
    return out
