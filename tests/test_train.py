"""topo.Trainer: the loop against a hand-written SGD loop, run directory files, bit-identical resume,
crash safety, same seed → same run, bad input."""

import copy
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import topo
from topo.cli.factory import build_evolver, build_model, dense_mlp
from topo.errors import ParameterError, TopoError, TopologyFormatError
from topo.train import checkpoint as _checkpoint

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "num_edges",
           "train_seconds", "evolve_seconds"]
TIMINGS = ["train_seconds", "evolve_seconds"]
SIZES = [12, 24, 24, 3]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tests share two cores (pytest -n 2, other jobs): more intra-op threads than free cores make
    # OpenMP spin-wait and a tiny model train 30x slower. Results do not depend on it.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 12, generator=g) * 1.5
    y = torch.arange(300) % 3
    X = (centres[y] + torch.randn(300, 12, generator=g)).float()
    return (X[:240], y[:240]), (X[240:], y[240:])


def make(rule="set", epochs=4, out=None, resume=False, seed=0, **kw):
    model = build_model(SIZES, rule, epsilon=3, dropout=0.2, seed=seed)
    ev = build_evolver(model, rule, seed=seed)
    return topo.Trainer(model, evolver=ev, epochs=epochs, batch_size=32, lr=0.05, seed=seed, out_dir=out,
                        resume=resume, progress=False, **kw)


def assert_same_run(a, b):
    """Everything but wall times equal, bit for bit."""
    pd.testing.assert_frame_equal(a.metrics_.drop(columns=TIMINGS), b.metrics_.drop(columns=TIMINGS))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    oa, ob = a.optimizer_.state_dict()["state"], b.optimizer_.state_dict()["state"]
    assert oa.keys() == ob.keys()
    assert all(torch.equal(oa[i]["momentum_buffer"], ob[i]["momentum_buffer"]) for i in oa)
    assert a.model.topology() == b.model.topology()
    if a.history_ is not None:
        assert a.history_.epochs == b.history_.epochs
        assert all(ta == tb for (_, ta), (_, tb) in zip(a.history_, b.history_))
        pd.testing.assert_frame_equal(a.history_.frame().drop(columns="seconds"),
                                      b.history_.frame().drop(columns="seconds"))


# -- the loop itself ----------------------------------------------------------------------------------
def test_loop_matches_a_hand_written_sgd_loop(data):
    (X, y), test = data
    model = dense_mlp(SIZES, dropout=0.0, seed=3)
    ref = copy.deepcopy(model)
    t = topo.Trainer(model, epochs=2, batch_size=50, lr=0.1, momentum=0.5, weight_decay=1e-3, seed=7,
                     progress=False).fit((X, y), test)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.5, weight_decay=1e-3)
    g = torch.Generator().manual_seed(7)
    for _ in range(2):
        losses, correct = [], 0
        perm = torch.randperm(240, generator=g)
        for i in range(0, 240, 50):
            idx = perm[i:i + 50]
            out = ref(X[idx])
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()) * len(idx))
            correct += int((out.argmax(1) == y[idx]).sum())
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    last = t.metrics_.iloc[-1]
    assert last.train_loss == pytest.approx(sum(losses) / 240, rel=1e-6)
    assert last.train_acc == correct / 240
    with torch.no_grad():
        out = ref(test[0])
    assert last.test_acc == pytest.approx(float((out.argmax(1) == test[1]).float().mean()))
    assert last.test_loss == pytest.approx(float(torch.nn.functional.cross_entropy(out, test[1])), rel=1e-5)
    assert t.evaluate(test)["acc"] == last.test_acc
    assert last.num_edges == 12 * 24 + 24 * 24 + 24 * 3 and t.history_ is None


def test_set_run_learns_and_evolves_after_every_epoch_but_the_last(data):
    t = make("set", epochs=4).fit(*data)
    m = t.metrics_
    assert list(m.columns) == COLUMNS and m.epoch.tolist() == [1, 2, 3, 4]
    assert m.train_loss.iloc[-1] < m.train_loss.iloc[0] and m.test_acc.iloc[-1] > 0.6  # chance is 1/3
    assert (m.evolve_seconds.iloc[:-1] > 0).all() and m.evolve_seconds.iloc[-1] == 0
    assert m.num_edges.nunique() == 1 and m.num_edges.iloc[0] == t.model.topology().num_edges
    assert t.history_.epochs == [0.0, 1.0, 2.0, 3.0]
    births = t.history_.frame().query("epoch > 0 and layer == 0").births
    assert (births > 0).all()  # SET rewired the first layer each time
    # The evolver remapped the trainer's own optimizer state.
    assert t.evolver.optimizer is t.optimizer_
    w = t.model.sparse_layers[0].weight
    assert t.optimizer_.state[w]["momentum_buffer"].shape == w.shape


@pytest.mark.parametrize("rule", ["static", "dense", "ctre-sim", "rigl", "magnitude+random"])
def test_other_rules_run(data, rule, tmp_path):
    t = make(rule, epochs=2, out=tmp_path / "run").fit(*data)
    assert t.metrics_.epoch.tolist() == [1, 2] and np.isfinite(t.metrics_.test_loss).all()
    h = topo.History.load(tmp_path / "run" / "history.npz")
    final = topo.load(tmp_path / "run" / "topology.npz")
    assert final.sizes == tuple(SIZES)
    if rule == "dense":
        assert h.epochs == [0.0] and final.num_edges == 12 * 24 + 24 * 24 + 24 * 3
        torch.testing.assert_close(final[0].to_dense(), t.model[0].weight.detach(), rtol=0, atol=0)
    else:
        assert h.epochs == [0.0, 1.0]
    if rule == "static":
        assert all(a.keys().equal(b.keys()) for a, b in zip(h.topology(1), h.topology(0)))


def test_adam_and_no_test_data(data):
    t = make("set", epochs=2, optimizer="adam").fit(data[0])
    assert isinstance(t.optimizer_, torch.optim.Adam)
    assert t.metrics_.test_acc.isna().all() and t.metrics_.train_acc.notna().all()


# -- run directory, resume, crashes --------------------------------------------------------------------
def test_run_directory_files_parse(data, tmp_path):
    out = tmp_path / "run"
    t = make("set", epochs=3, out=out).fit(*data)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoint.pt", "config.json", "history.npz",
                                                     "manifest.json", "metrics.csv", "model.safetensors",
                                                     "topology.npz"]
    # The manifest lists every file with its real sha256; the lock is released (its record cleared).
    listed = json.loads((out / "manifest.json").read_text())
    assert "pending" not in listed and sorted(listed["files"]) == ["checkpoint.pt", "config.json", "history.npz",
                                                                   "metrics.csv", "model.safetensors",
                                                                   "topology.npz"]
    for name, entry in listed["files"].items():
        data_ = (out / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data_).hexdigest(), "bytes": len(data_)}, name
    assert (out / ".lock").read_bytes() == b""
    m = pd.read_csv(out / "metrics.csv")
    assert list(m.columns) == COLUMNS and m.epoch.tolist() == [1, 2, 3]
    np.testing.assert_allclose(m.drop(columns=TIMINGS), t.metrics_.drop(columns=TIMINGS), rtol=1e-9)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sizes"] == SIZES and cfg["seed"] == 0 and cfg["epochs"] == 3 and cfg["lr"] == 0.05
    assert cfg["rule"] == "set" and cfg["versions"]["torch"] == torch.__version__
    h = topo.History.load(out / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0]  # no evolution after the last epoch
    final = topo.load(out / "topology.npz")
    assert final == t.model.topology()
    assert all(a.keys().equal(b.keys()) for a, b in zip(h.final, final))
    ck = _checkpoint.load_checkpoint(out / "checkpoint.pt")
    assert ck["epoch"] == 3 and ck["evolved"] is False and len(ck["metrics"]) == 3


def test_same_seed_same_run_other_seed_other_run(data):
    a, b, c = make(seed=1).fit(*data), make(seed=1).fit(*data), make(seed=2).fit(*data)
    assert_same_run(a, b)
    assert a.model.topology().fingerprint() != c.model.topology().fingerprint()
    assert not a.metrics_.train_loss.equals(c.metrics_.train_loss)


def test_resume_extending_a_finished_run_is_bit_identical(data, tmp_path):
    straight = make(epochs=4, out=tmp_path / "a").fit(*data)
    make(epochs=2, out=tmp_path / "b").fit(*data)
    resumed = make(epochs=4, out=tmp_path / "b", resume=True).fit(*data)
    assert_same_run(straight, resumed)
    assert resumed.metrics_.evolve_seconds.iloc[1] > 0  # the step skipped after epoch 2 was done on resume
    for name in ("metrics.csv",):
        a, b = (pd.read_csv(tmp_path / d / name).drop(columns=TIMINGS) for d in "ab")
        pd.testing.assert_frame_equal(a, b)
    assert topo.load(tmp_path / "a" / "topology.npz") == topo.load(tmp_path / "b" / "topology.npz")
    # Nothing left to do: resuming a complete run changes nothing.
    again = make(epochs=4, out=tmp_path / "b", resume=True).fit(*data)
    assert_same_run(straight, again)


def test_crash_mid_epoch_keeps_last_checkpoint_and_resume_is_bit_identical(data, tmp_path):
    straight = make(epochs=4, out=tmp_path / "a").fit(*data)
    calls = {"n": 0}

    def crashing_loss(out, y):  # dies in the middle of epoch 3 (8 training batches + 1 test batch per epoch)
        calls["n"] += 1
        if calls["n"] == 2 * 9 + 4:
            raise RuntimeError("simulated crash")
        return torch.nn.functional.cross_entropy(out, y)

    out = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        make(epochs=4, out=out, loss=crashing_loss).fit(*data)
    ck = _checkpoint.load_checkpoint(out / "checkpoint.pt")
    assert ck["epoch"] == 2 and ck["evolved"] is True
    assert pd.read_csv(out / "metrics.csv").epoch.tolist() == [1, 2]
    assert topo.History.load(out / "history.npz").epochs == [0.0, 1.0, 2.0]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = make(epochs=4, out=out, resume=True).fit(*data)
    assert_same_run(straight, resumed)


def test_crash_while_writing_the_checkpoint_leaves_the_previous_one(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    make(epochs=2, out=out).fit(*data)
    before = (out / "checkpoint.pt").read_bytes()
    files = {p.name: p.read_bytes() for p in out.iterdir()}

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        make(epochs=3, out=out, resume=True).fit(*data)
    monkeypatch.undo()
    assert (out / "checkpoint.pt").read_bytes() == before
    assert _checkpoint.load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    # An epoch's files are one commit of the run directory: the failed write changed none of them
    # (config.json included), and no temporary file is left.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    assert topo.History.load(out / "history.npz").epochs == [0.0, 1.0]
    resumed = make(epochs=3, out=out, resume=True).fit(*data)
    assert_same_run(make(epochs=3).fit(*data), resumed)


# -- bad input -------------------------------------------------------------------------------------------
def test_existing_run_is_not_overwritten(data, tmp_path):
    out = tmp_path / "run"
    make(epochs=1, out=out).fit(*data)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        make(epochs=1, out=out).fit(*data)
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "other-format"])
def test_corrupt_checkpoint_is_a_clear_error(data, tmp_path, damage):
    out = tmp_path / "run"
    make(epochs=1, out=out).fit(*data)
    path = out / "checkpoint.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "pickle":  # arbitrary objects are never unpickled
        torch.save({"__format__": "topo.checkpoint", "obj": _Evil()}, path)
    else:
        torch.save({"__format__": "something.else", "__version__": 1}, path)
    with pytest.raises(TopologyFormatError, match="checkpoint.pt"):
        make(epochs=2, out=out, resume=True).fit(*data)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_resume_with_other_settings_is_refused(data, tmp_path):
    make(epochs=1, out=tmp_path / "run").fit(*data)
    t = make(epochs=2, out=tmp_path / "run", resume=True)
    t.lr = 0.5
    with pytest.raises(ParameterError, match="lr=0.05"):
        t.fit(*data)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        make(epochs=2, out=tmp_path / "none", resume=True).fit(*data)


@pytest.mark.parametrize("change, match", [
    ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"lr": math.nan}, "lr"), ({"momentum": -0.1}, "momentum"), ({"optimizer": "rmsprop"}, "rmsprop"),
    ({"seed": "zero"}, "seed"), ({"resume": True}, "out_dir"), ({"device": "nonsense"}, "device"),
    ({"evolver": object()}, "evolver"), ({"model": "mlp"}, "model"),
])
def test_bad_settings(data, change, match):
    t = make(epochs=1)
    for k, v in change.items():
        setattr(t, k, v)
    with pytest.raises(TopoError, match=match):
        t.fit(*data)


@pytest.mark.parametrize("train, match", [
    ((torch.rand(10, 12),), "pair"), ((torch.rand(10, 12), torch.rand(10)), "integer"),
    ((torch.rand(10), torch.zeros(10, dtype=torch.long)), "2-D"),
    ((torch.rand(10, 12), torch.zeros(9, dtype=torch.long)), "10 rows"),
])
def test_bad_data(train, match):
    with pytest.raises(TopoError, match=match):
        make(epochs=1).fit(train)


def test_evolver_of_another_model_or_optimizer_is_refused(data):
    t = make(epochs=1)
    other = build_model(SIZES, "set", epsilon=3, seed=5)
    t.evolver = topo.Evolver(other, "set", seed=0)
    with pytest.raises(ParameterError, match="another model"):
        t.fit(*data)
    t.evolver = topo.Evolver(t.model, "set", optimizer=torch.optim.SGD(t.model.parameters(), lr=0.1), seed=0)
    with pytest.raises(ParameterError, match="another optimizer"):
        t.fit(*data)


def test_a_second_trainer_takes_over_the_evolver_of_the_first(data, tmp_path):
    first = make(epochs=2, out=tmp_path / "run").fit(*data)
    second = topo.Trainer(first.model, evolver=first.evolver, epochs=3, batch_size=32, lr=0.05, seed=0,
                          out_dir=tmp_path / "run", resume=True, progress=False).fit(*data)
    assert first.evolver.optimizer is second.optimizer_
    assert_same_run(make(epochs=3).fit(*data), second)
