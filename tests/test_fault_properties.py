"""Property tests that try to break topo's file readers with damaged bytes (issue 14).

Every file type a run writes and topo reads back is damaged at random — bytes
flipped, the file cut short, garbage appended — and read with the loader a
user calls directly (no run directory, no manifest). Each read must either give
back exactly the data that was saved or raise a :class:`topo.TopoError` that
names the file; never another exception type, never other data.

``metrics.csv`` is plain text without a checksum: a digit changed into another
digit is still a valid table, and only the run's manifest can tell (that case is
tested through :class:`topo.runs.RunDir`). Its raw reader must still never let a
parser error out, and never hand back a table that is not whole and numeric.
"""

from __future__ import annotations

import functools
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topo
from topo.errors import TopoError
from topo.graph.history import LayerChange
from topo.runs import RunDir
from topo.runs.checkpoint import load_checkpoint, save_checkpoint
from topo.runs.table import read_metrics, write_metrics

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# -- the originals ------------------------------------------------------------------------------------------
@functools.cache  # the originals are only compared with, never changed
def _topology() -> topo.Topology:
    t = topo.erdos_renyi([7, 6, 3], density=0.5, seed=3)
    g = torch.Generator().manual_seed(0)
    return t.with_weights([torch.randn(layer.num_edges, generator=g) for layer in t])


@functools.cache
def _history(steps: int, seed: int = 0) -> topo.History:
    """A random evolution of ``_topology()``: edges die and are born, weights recorded on most steps."""
    rng = np.random.default_rng(seed)
    t0 = _topology()
    h = topo.History(t0, meta={"seed": seed, "note": "fault test"})
    alive = [set(zip(g.src.tolist(), g.dst.tolist())) for g in t0]
    for i in range(steps):
        changes = []
        for k, g in enumerate(t0):
            live = sorted(alive[k])
            deaths = [live[j] for j in rng.permutation(len(live))[:rng.integers(0, 4)]]
            empty = sorted({(s, d) for s in range(g.n_in) for d in range(g.n_out)} - alive[k])
            births = [empty[j] for j in rng.permutation(len(empty))[:rng.integers(0, 4)]]
            alive[k] = (alive[k] - set(deaths)) | set(births)
            changes.append(LayerChange(torch.tensor(births, dtype=torch.int64).reshape(-1, 2).T,
                                       torch.tensor(deaths, dtype=torch.int64).reshape(-1, 2).T, 0.01 * i))
        weights = None if i == 1 else [torch.randn(len(a), generator=torch.Generator().manual_seed(i)) for a in alive]
        h.record(float(i + 1), changes, weights, step=10 * (i + 1))
    return h


def _checkpoint_state() -> dict:
    model = topo.compile(topo.erdos_renyi([7, 6, 3], density=0.5, seed=1), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 7, generator=torch.Generator().manual_seed(0))).sum().backward()
    opt.step()
    return {"epoch": 2, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "rng": {"torch": torch.Generator().manual_seed(5).get_state(), "numpy": [1, 2, 3]},
            "metrics": [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}]}


_ROWS = [{"epoch": 1, "train_loss": 0.6931471806, "train_acc": 0.5, "test_acc": 0.55, "num_edges": 40},
         {"epoch": 2, "train_loss": 0.5, "train_acc": 0.625, "test_acc": float("nan"), "num_edges": 40},
         {"epoch": 3, "train_loss": 0.375, "train_acc": 0.75, "test_acc": 0.8125, "num_edges": 41}]


@functools.cache
def originals() -> dict[str, bytes]:
    """The bytes of each file as topo writes it (written once, in a scratch directory)."""
    d = Path(tempfile.mkdtemp(prefix="topo-faults-"))
    _topology().save(d / "topology.npz")
    full = _history(5)
    _history(5).save(d / "history.npz")
    # The append layout: saved after 3 steps, then the 2 new steps appended to the same file.
    prefix = _history(3)
    prefix.save(d / "appended.npz")
    (d / "prefix.npz").write_bytes((d / "appended.npz").read_bytes())
    full.save(d / "appended.npz")
    assert (d / "appended.npz").stat().st_size > (d / "prefix.npz").stat().st_size
    save_checkpoint(d / "checkpoint.pt", _checkpoint_state())
    topo.save_model(topo.compile(_topology(), seed=0), d / "model.safetensors", config={"seed": 0})
    write_metrics(d / "metrics.csv", _ROWS)
    return {p.name: p.read_bytes() for p in d.iterdir()}


# -- comparing what loads with what was saved -----------------------------------------------------------------
def same_tensor(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
            and a.shape == b.shape and a.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            == b.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())


def same(a, b) -> bool:
    """Deep equality of checkpoint-like values; tensors bit for bit (NaN equals NaN), types exact."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return same_tensor(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def same_history(a: topo.History, b: topo.History) -> bool:
    if a.epochs != b.epochs or a.steps != b.steps or a.meta != b.meta or a.initial != b.initial:
        return False
    for e in a.epochs:
        wa, wb = a.weights(e), b.weights(e)
        if (wa is None) != (wb is None) or a.topology(e) != b.topology(e):
            return False
        if wa is not None and not all((x is None and y is None) or same_tensor(x, y) for x, y in zip(wa, wb)):
            return False
        if e and [(c.births.tolist(), c.deaths.tolist(), c.seconds) for c in a.changes(e)] != \
                [(c.births.tolist(), c.deaths.tolist(), c.seconds) for c in b.changes(e)]:
            return False
    return True


def same_model(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return type(a) is type(b) and repr(a) == repr(b) and same(dict(sa), dict(sb))


# -- damage ------------------------------------------------------------------------------------------------------
@st.composite
def damage(draw, n: int):
    """``(kind, damaged bytes function)``: flipped bytes (anywhere, or near either end where the headers and
    the zip directory are), a cut, or appended garbage."""
    kind = draw(st.sampled_from(["flip", "flip", "flip", "cut", "garbage"]))
    if kind == "cut":
        at = draw(st.one_of(st.integers(0, n - 1), st.integers(max(0, n - 200), n - 1)))
        return kind, at, (lambda raw: raw[:at])
    if kind == "garbage":
        extra = draw(st.binary(min_size=1, max_size=64))
        return kind, len(extra), (lambda raw: raw + extra)
    where = st.one_of(st.integers(0, n - 1), st.integers(max(0, n - 400), n - 1), st.integers(0, min(n, 400) - 1))
    flips = draw(st.lists(st.tuples(where, st.integers(1, 255)), min_size=1, max_size=3))

    def apply(raw: bytes) -> bytes:
        b = bytearray(raw)
        for i, mask in flips:
            b[i] ^= mask
        return bytes(b)

    return kind, flips, apply


def load_damaged(name: str, data, loader):
    """Damage file ``name``, write it under a recognisable name and read it with ``loader``.

    Returns ``(kind, what, loaded or None)``; an error is accepted only when it is a TopoError naming the file.
    """
    raw = originals()[name]
    kind, what, apply = data.draw(damage(len(raw)), label="damage")
    bad = apply(raw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"damaged-{name}"
        path.write_bytes(bad)
        try:
            return kind, what, bad, loader(path)
        except TopoError as err:
            assert path.name in str(err), f"the error does not name the file: {err}"
            return kind, what, bad, None


def original(name: str, loader):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(originals()[name])
        return loader(path)


# -- the properties ---------------------------------------------------------------------------------------------
@PROPERTY
@given(data=st.data())
def test_damaged_topology_loads_identical_or_raises(data):
    kind, what, bad, got = load_damaged("topology.npz", data, topo.load)
    if got is not None:
        assert got == _topology(), f"{kind} {what} loaded other data"


@PROPERTY
@given(data=st.data())
def test_damaged_history_loads_identical_or_raises(data):
    kind, what, bad, got = load_damaged("history.npz", data, topo.History.load)
    if got is not None:
        assert same_history(got, _history(5)), f"{kind} {what} loaded other data"


@PROPERTY
@given(data=st.data())
def test_damaged_appended_history_loads_identical_or_its_last_whole_save(data):
    # Only a file cut short after the last whole save (a crash mid-append) may load the earlier history.
    kind, what, bad, got = load_damaged("appended.npz", data, topo.History.load)
    if got is None:
        return
    if not same_history(got, _history(5)):
        assert kind == "cut" and what >= len(originals()["prefix.npz"]), f"{kind} {what} loaded other data"
        assert same_history(got, _history(3)), f"{kind} {what} loaded other data"


def test_appended_history_cut_anywhere_after_the_first_save_gives_that_save(tmp_path):
    raw, first = originals()["appended.npz"], len(originals()["prefix.npz"])
    p = tmp_path / "h.npz"
    for n in sorted({first, first + 1, first + 30, (first + len(raw)) // 2, len(raw) - 23, len(raw) - 1}):
        p.write_bytes(raw[:n])
        assert same_history(topo.History.load(p), _history(3)), n


@PROPERTY
@given(data=st.data())
def test_damaged_checkpoint_loads_identical_or_raises(data):
    kind, what, bad, got = load_damaged("checkpoint.pt", data, load_checkpoint)
    if got is not None:
        assert same(got, original("checkpoint.pt", load_checkpoint)), f"{kind} {what} loaded other data"


@PROPERTY
@given(data=st.data())
def test_damaged_model_file_loads_identical_or_raises(data):
    kind, what, bad, got = load_damaged("model.safetensors", data, topo.load_model)
    if got is not None:
        assert same_model(got, original("model.safetensors", topo.load_model)), f"{kind} {what} loaded other data"


@PROPERTY
@given(data=st.data())
def test_damaged_metrics_table_is_whole_and_numeric_or_raises(data):
    kind, what, bad, got = load_damaged("metrics.csv", data, read_metrics)
    if got is None:
        return
    want = original("metrics.csv", read_metrics)
    assert isinstance(got, pd.DataFrame) and all(pd.api.types.is_numeric_dtype(t) for t in got.dtypes), got.dtypes
    assert "epoch" in got.columns and got["epoch"].is_monotonic_increasing and got["epoch"].notna().all()
    if kind == "cut":  # cut at a line end: the first rows, whole (only the manifest knows there were more)
        assert list(got.columns) == list(want.columns) and got.equals(want.head(len(got))), f"cut {what}"


@PROPERTY
@given(data=st.data())
def test_damaged_metrics_in_a_run_directory_load_identical_or_raise(data, tmp_path_factory):
    raw = originals()["metrics.csv"]
    kind, what, apply = data.draw(damage(len(raw)), label="damage")
    out = tmp_path_factory.mktemp("run")
    with RunDir.create(out) as run:
        run.write_metrics(_ROWS)
    want = RunDir(out).read_metrics()
    (out / RunDir.METRICS).write_bytes(apply((out / RunDir.METRICS).read_bytes()))
    try:
        got = RunDir(out).read_metrics()
    except TopoError as err:
        assert RunDir.METRICS in str(err)
        return
    assert got.equals(want), f"{kind} {what} loaded other data"


@pytest.mark.parametrize("name", ["topology.npz", "history.npz", "appended.npz", "checkpoint.pt"])
def test_trailing_garbage_after_a_zip_is_refused(tmp_path, name):
    loader = {"checkpoint.pt": load_checkpoint, "topology.npz": topo.load}.get(name, topo.History.load)
    p = tmp_path / f"x-{name}"
    for extra in (b"\0", b"PK\x05\x06", b"junk" * 20):
        p.write_bytes(originals()[name] + extra)
        with pytest.raises(TopoError, match=p.name):
            loader(p)


def _structure(raw: bytes, also_after: int | None = None) -> list[int]:
    """Byte positions to damage: the first and last members' local headers (or the first header after
    ``also_after``: an append's), three directory entries (the first two and a middle one: in a
    checkpoint, a tensor's), the end records, and every 97th (401st) byte (array data)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = sorted(z.infolist(), key=lambda i: i.header_offset)
        start_dir = z.start_dir
    if also_after is None:
        chosen = [infos[0], infos[-1]]
    else:
        chosen = [i for i in infos if i.header_offset >= also_after][:1]
    spots = {p for i in chosen for p in range(i.header_offset, i.header_offset + 30 + len(i.filename))}
    at, entries = start_dir, []
    while raw[at:at + 4] == b"PK\x01\x02":
        n, x, c = struct.unpack("<HHH", raw[at + 28:at + 34])
        entries.append(range(at, at + 46 + n))
        at += 46 + n + x + c
    for k in {0, 1, len(entries) // 2}:
        spots |= set(entries[k])
    spots |= set(range(max(0, len(raw) - 120), len(raw)))
    spots |= set(range(0, len(raw), 97 if also_after is None else 401))
    return sorted(spots)


@pytest.mark.parametrize("name", ["topology.npz", "appended.npz", "checkpoint.pt"])
def test_every_bookkeeping_byte_flipped(tmp_path, name):
    """Hypothesis draws few positions; here each byte of the zip structure is damaged in turn."""
    raw = originals()[name]
    loader = {"checkpoint.pt": load_checkpoint, "topology.npz": topo.load}.get(name, topo.History.load)
    want = original(name, loader)
    check = {"checkpoint.pt": lambda g: same(g, want), "topology.npz": lambda g: g == want}.get(
        name, lambda g: same_history(g, want))
    p = tmp_path / f"x-{name}"
    for i in _structure(raw, len(originals()["prefix.npz"]) if name == "appended.npz" else None):
        for mask in (0x10, 0xFF) if name != "appended.npz" else (0xFF,):  # 0x10: a zip "directory" bit
            b = bytearray(raw)
            b[i] ^= mask
            p.write_bytes(bytes(b))
            try:
                got = loader(p)
            except TopoError as err:
                assert p.name in str(err) and len(str(err)) < 1000, str(err)[:300]
                continue
            assert check(got), f"byte {i} ^ {mask:#x} loaded other data"
