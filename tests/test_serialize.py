"""Persistence: documented pickle-free npz layout, identical round trips, atomic writes, damaged files."""

import os
import stat
import zipfile

import numpy as np
import pytest
import torch

import topo
from topo import TopologyError, TopologyFormatError
from topo.graph.serialize import FORMAT_VERSION, read_npz, write_npz
from topo.utils.atomic import atomic_write


def sample_topology(weighted=True, dtype=torch.float32):
    t = topo.erdos_renyi([6, 5, 4], density=0.5, seed=1)
    if weighted:
        g = torch.Generator().manual_seed(0)
        t = t.with_weights([torch.randn(layer.num_edges, generator=g, dtype=dtype) for layer in t])
    return t


@pytest.mark.parametrize("t", [
    sample_topology(False), sample_topology(True), sample_topology(True, torch.float64),
    topo.from_edges([3, 2, 2], [([], [], []), ([0, 1], [1, 0], [0.5, -1.5])]),
    topo.Topology.empty([4, 1]),
    topo.erdos_renyi([64, 100, 100, 10], epsilon=10, seed=0),
], ids=["unweighted", "float32", "float64", "empty-layer", "edgeless", "digits"])
def test_save_load_identical(tmp_path, t):
    p = tmp_path / "t.npz"
    t.save(p)
    back = topo.load(p)
    assert back == t and back.weighted == t.weighted
    for a, b in zip(back, t):
        assert a.src.dtype == torch.int64 and (a.weight is None or a.weight.dtype == b.weight.dtype)
    assert back.fingerprint() == t.fingerprint()
    topo.load(str(p))  # str paths work too


def test_file_is_the_documented_pickle_free_npz(tmp_path):
    t = sample_topology(True)
    p = tmp_path / "t.npz"
    t.save(p)
    assert zipfile.is_zipfile(p)
    with np.load(p, allow_pickle=False) as z:  # readable without pickle, by plain numpy
        keys = set(z.files)
        assert keys == {"__format__", "__version__", "sizes"} | {
            f"layer{k}.{a}" for k in range(2) for a in ("src", "dst", "weight")}
        assert str(z["__format__"]) == "topo.topology" and int(z["__version__"]) == FORMAT_VERSION == 1
        assert z["sizes"].tolist() == [6, 5, 4] and z["sizes"].dtype == np.int64
        for k, g in enumerate(t):
            assert z[f"layer{k}.src"].dtype == np.int32
            assert z[f"layer{k}.src"].tolist() == g.src.tolist()
            assert z[f"layer{k}.dst"].tolist() == g.dst.tolist()
            np.testing.assert_array_equal(z[f"layer{k}.weight"], g.weight.numpy())


def test_indices_beyond_int32_are_stored_as_int64(tmp_path):
    big = 2**31 + 5
    t = topo.from_edges([big, 2], [([0, big - 1], [1, 0])])
    t.save(tmp_path / "big.npz")
    with np.load(tmp_path / "big.npz") as z:
        assert z["layer0.src"].dtype == np.int64
    assert topo.load(tmp_path / "big.npz") == t


def test_written_file_has_normal_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    p = tmp_path / "t.npz"
    sample_topology().save(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    os.chmod(p, 0o640)
    sample_topology(False).save(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640  # an existing file keeps its mode


# -- atomic writes ------------------------------------------------------------------------------

def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(p, "wb") as f:
            f.write(b"new half")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["x.bin"]
    with atomic_write(p, "w") as f:
        f.write("new")
    assert p.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["x.bin"]


def test_atomic_write_bad_mode_or_directory(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "y", "bogus"):
            pass
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "y"):
            pass
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "t.npz"
    old = sample_topology(False)
    old.save(p)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        sample_topology(True).save(p)
    monkeypatch.undo()
    assert topo.load(p) == old
    assert os.listdir(tmp_path) == ["t.npz"]


def test_save_into_missing_directory_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        sample_topology().save(tmp_path / "nope" / "t.npz")
    assert os.listdir(tmp_path) == []


# -- damaged or foreign files -------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        topo.load(tmp_path / "absent.npz")


def test_truncation_is_a_format_error(tmp_path):
    p = tmp_path / "t.npz"
    sample_topology().save(p)
    raw = p.read_bytes()
    bad = tmp_path / "bad.npz"
    for n in sorted(set(range(0, len(raw), 5)) | set(range(len(raw) - 64, len(raw)))):
        bad.write_bytes(raw[:n])
        with pytest.raises(TopologyFormatError, match="bad.npz"):
            topo.load(bad)


def test_single_byte_corruption_never_loads_something_else(tmp_path):
    """Any one damaged byte: a TopologyFormatError, or (timestamps, padding) the very same topology."""
    t = sample_topology()
    p = tmp_path / "t.npz"
    t.save(p)
    raw = p.read_bytes()
    bad = tmp_path / "bad.npz"
    errors = 0
    for i in range(len(raw)):
        b = bytearray(raw)
        b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
        try:
            assert topo.load(bad) == t, f"byte {i} changed what loads"
        except TopologyFormatError:
            errors += 1
    assert errors > len(raw) // 2


def test_corrupt_array_data_is_detected(tmp_path):
    t = sample_topology()
    p = tmp_path / "t.npz"
    t.save(p)
    raw = bytearray(p.read_bytes())
    needle = t[0].weight.numpy().tobytes()
    at = raw.find(needle)
    assert at > 0
    raw[at + 3] ^= 0x10  # flip one bit inside the weights: only the zip CRC can tell
    p.write_bytes(bytes(raw))
    with pytest.raises(TopologyFormatError, match="not a readable topo file"):
        topo.load(p)


def test_not_a_zip_and_plain_npy(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_text("definitely not a zip")
    with pytest.raises(TopologyFormatError, match="not a readable topo file"):
        topo.load(p)
    np.save(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(TopologyFormatError):
        topo.load(tmp_path / "a.npy")


def test_pickled_object_arrays_are_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, __format__=np.array("topo.topology"), __version__=np.array(1),
             sizes=np.array([2, 2]), **{"layer0.src": np.array([object()], dtype=object),
                                        "layer0.dst": np.array([0])})
    with pytest.raises(TopologyFormatError, match="not a readable topo file"):
        topo.load(p)


def _write(p, **arrays):
    with open(p, "wb") as f:
        np.savez(f, **arrays)


GOOD = dict(sizes=np.array([3, 2]), **{"layer0.src": np.array([0, 2], np.int32),
                                       "layer0.dst": np.array([1, 1], np.int32)})


@pytest.mark.parametrize("arrays, match", [
    (dict(__format__=np.array("topo.topology"), __version__=np.array(2), **GOOD),
     "has format version 2; this topo reads version 1"),
    (dict(__format__=np.array("topo.topology"), **GOOD), "has format version None"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array("one"), **GOOD), "format version"),
    (dict(__format__=np.array("topo.history"), __version__=np.array(1), **GOOD),
     "holds 'topo.history', expected 'topo.topology'"),
    (dict(__version__=np.array(1), **GOOD), "holds 'no topo format tag'"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array([3, 2])),
     "is missing array 'layer0.src'"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array([3, 2]),
          **{"layer0.src": np.array([0, 5]), "layer0.dst": np.array([0, 0])}),
     r"invalid topology: src index 5 out of range \[0, 3\)"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array([3, 2]),
          **{"layer0.src": np.array([1, 1]), "layer0.dst": np.array([0, 0])}), "duplicate edge"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array([3, 0]),
          **{"layer0.src": np.array([]), "layer0.dst": np.array([])}), "must be a positive integer"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array(3)),
     "expected 1-D"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), meta=np.array("{not json"), **GOOD),
     "unreadable meta"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), meta=np.array("[1]"), **GOOD),
     "meta of type list"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), extra=np.array(1), **GOOD),
     r"unexpected arrays \['extra'\]"),
    (dict(__format__=np.array("topo.topology"), __version__=np.array(1), **GOOD,
          **{"layer0.weight": np.array(["a", "b"])}), "malformed topology arrays"),
])
def test_wrong_or_inconsistent_files(tmp_path, arrays, match):
    p = tmp_path / "w.npz"
    _write(p, **arrays)
    with pytest.raises(TopologyFormatError, match=match):
        topo.load(p)
    assert issubclass(TopologyFormatError, TopologyError)


def test_write_read_npz_helpers(tmp_path):
    p = tmp_path / "h.npz"
    write_npz(p, "topo.custom", {"x": np.arange(4)}, meta={"a": 1, "b": [1, 2]})
    data = read_npz(p, "topo.custom")
    assert data["meta"] == {"a": 1, "b": [1, 2]} and data["x"].tolist() == [0, 1, 2, 3]
    with pytest.raises(TopologyFormatError, match="expected 'topo.topology'"):
        topo.load(p)
