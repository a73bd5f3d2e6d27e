"""Deterministic stratified train/test splits and feature scaling.

The split must be the same for everyone, on every platform and library
version, so it does not use a numpy or torch random stream (whose algorithms
may change between releases). Each sample index is ranked by a SplitMix64
hash of ``(seed, index)`` – pure 64-bit integer arithmetic – and the
lowest-ranked samples of each class form the test set.
"""

from __future__ import annotations

import math

import numpy as np

from topo.errors import DatasetError

__all__ = ["stratified_split", "minmax_scale", "standardize", "remap_labels"]

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # uint64 array arithmetic wraps modulo 2**64 silently, which is exactly
    # what SplitMix64 needs.
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _keys(n: int, seed: int) -> np.ndarray:
    base = _splitmix64(np.array([seed], dtype=np.uint64))
    return _splitmix64(np.arange(n, dtype=np.uint64) ^ base)


def stratified_split(y, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test, keeping class proportions.

    The test set has ``ceil(test_fraction * n)`` samples, apportioned to the
    classes by largest remainder (ties to the lower class label); every class
    with at least two samples keeps at least one sample on each side.
    Which samples go to the test set depends only on ``seed`` and the sample
    index, never on a library's random generator, so the split is identical
    across platforms and versions.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Class labels.
    test_fraction : float
        Fraction of samples in the test set, in (0, 1).
    seed : int
        Non-negative integer selecting the split.

    Returns
    -------
    train, test : numpy.ndarray of int64
        Sorted, disjoint indices whose union is ``range(n)``.

    Examples
    --------
    >>> tr, te = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.3, seed=1)
    >>> len(tr), len(te), sorted(set(tr) | set(te)) == list(range(10))
    (7, 3, True)
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise DatasetError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise DatasetError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    n = y.size
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_test = math.ceil(float(test_fraction) * n)
    exact = counts * (n_test / n)
    alloc = np.floor(exact).astype(np.int64)
    rest = n_test - int(alloc.sum())
    # Largest remainder; np.argsort is stable, so ties go to the lower class.
    order = np.argsort(-(exact - alloc), kind="stable")
    alloc[order[:rest]] += 1
    small = counts >= 2
    alloc[small] = np.clip(alloc[small], 1, counts[small] - 1)

    keys = _keys(n, int(seed))
    test_mask = np.zeros(n, dtype=bool)
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        ranked = members[np.argsort(keys[members], kind="stable")]
        test_mask[ranked[: alloc[c]]] = True
    return np.flatnonzero(~test_mask).astype(np.int64), np.flatnonzero(test_mask).astype(np.int64)


def minmax_scale(X: np.ndarray) -> np.ndarray:
    """Scale each column to [0, 1] (constant columns become 0), as float32.

    Examples
    --------
    >>> minmax_scale(np.array([[1.0, 5.0], [3.0, 5.0]])).tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    span[span == 0] = 1.0
    return ((X - lo) / span).astype(np.float32)


def standardize(train, *others, eps: float = 1e-4):
    """Zero mean and unit variance per feature, with statistics of ``train`` only.

    The preprocessing of SET's reference code: ``(X - mean) / (std + eps)`` with the
    training split's mean and std applied to every split (so no test statistics leak
    in). Constant features become 0. Accepts and returns torch tensors or numpy
    arrays (float32 for numpy input; torch input keeps its dtype); returns a tuple
    ``(train, *others)``.

    Examples
    --------
    >>> tr, te = standardize(np.array([[0.0, 1.0], [2.0, 1.0]]), np.array([[3.0, 1.0]]))
    >>> tr.round(3).tolist(), te.round(3).tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [[2.0, 0.0]])
    """
    if eps <= 0:
        raise DatasetError(f"eps must be positive, got {eps!r}")
    arrays = (train, *others)
    if any(np.ndim(a) != 2 or np.shape(a)[1] != np.shape(train)[1] for a in arrays):
        raise DatasetError(f"standardize needs 2-D arrays with the same number of columns, got shapes "
                           f"{[tuple(np.shape(a)) for a in arrays]}")
    ref = np.asarray(train.detach().cpu() if hasattr(train, "detach") else train, dtype=np.float64)
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    out = []
    for a in arrays:
        if hasattr(a, "detach"):  # a torch tensor: same dtype and device out
            import torch
            m = torch.as_tensor(mean, dtype=a.dtype, device=a.device)
            s = torch.as_tensor(std + eps, dtype=a.dtype, device=a.device)
            out.append((a - m) / s)
        else:
            out.append(((np.asarray(a, dtype=np.float64) - mean) / (std + eps)).astype(np.float32))
    return tuple(out)


def remap_labels(y) -> np.ndarray:
    """Map arbitrary labels to 0..C-1 in sorted order of the original values.

    Examples
    --------
    >>> remap_labels([10, -1, 10, 3]).tolist()
    [2, 0, 2, 1]
    """
    y = np.asarray(y).ravel()
    _, inverse = np.unique(y, return_inverse=True)
    return inverse.astype(np.int64)
