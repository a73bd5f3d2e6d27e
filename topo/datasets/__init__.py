"""Classification datasets for sparse-network experiments.

``load(name, split)`` returns ``(X, y)`` torch tensors: ``X`` float32
``[n, features]`` in [0, 1], ``y`` int64 ``[n]`` with classes ``0..C-1``.
Files are verified against pinned sha256 checksums; downloads go to
``$TOPO_DATA`` (default ``~/.cache/topo``). See ``datasets/README.md`` at the
project root for sources, licences and checksums.

Examples
--------
>>> from topo import datasets
>>> datasets.available()
['coil20', 'digits', 'fashion-mnist', 'mnist', 'synthetic']
>>> X, y = datasets.load("synthetic:n=200,features=10,classes=4,informative=3,seed=1", "test")
>>> tuple(X.shape), datasets.info("synthetic:n=200,features=10,classes=4,informative=3").informative
((40, 10), (0, 1, 2))
"""

from ._fetch import data_home, sha256_file, verify_file
from ._idx import idx_bytes, parse_idx, read_idx, write_idx
from ._mat import read_mat
from ._registry import SPLITS, DatasetInfo, available
from ._split import minmax_scale, remap_labels, standardize, stratified_split
from ._synthetic import SyntheticSpec, make_synthetic
from .loaders import SPLIT_SEED, TEST_FRACTION, DatasetStatus, coil20_path, fetch, info, load, status

__all__ = [
    "load",
    "info",
    "available",
    "fetch",
    "status",
    "DatasetInfo",
    "DatasetStatus",
    "SPLITS",
    "TEST_FRACTION",
    "SPLIT_SEED",
    "data_home",
    "coil20_path",
    "stratified_split",
    "minmax_scale",
    "standardize",
    "remap_labels",
    "read_idx",
    "parse_idx",
    "idx_bytes",
    "write_idx",
    "read_mat",
    "SyntheticSpec",
    "make_synthetic",
    "sha256_file",
    "verify_file",
]
