"""The examples in ``examples/`` run end to end in their ``--smoke`` mode (digits, tiny layers, 2-3 epochs).

Each script runs as a user would run it, ``python examples/<name>.py --smoke --out DIR``, in a
subprocess. The six start together on first use (one torch thread each) so the whole file costs about
the slowest script plus the interpreter starts, not their sum. The checks read what the scripts print
and the files they write, and compare them with what the library computes independently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import topo

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ("set_vs_dense", "cosine_extreme_sparsity", "input_importance", "scale_free", "plug_into_torch",
         "gephi_timeline", "sparsify_your_model", "feature_selection")


class _Smoke:
    """Start every example once, in parallel; hand out (returncode, stdout, out_dir) per name."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        self.root, self.procs, self.done = root, {}, {}
        for name in NAMES:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", "--out", str(root / name)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env)

    def __call__(self, name: str):
        if name not in self.done:
            out, err = self.procs[name].communicate(timeout=600)
            self.done[name] = (self.procs[name].returncode, out, err, self.root / name)
        return self.done[name]

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    runner = _Smoke(tmp_path_factory.mktemp("examples"))
    yield runner
    runner.close()


def _ok(smoke, name):
    code, out, err, path = smoke(name)
    assert code == 0, f"{name} failed:\n{out[-3000:]}\n{err[-3000:]}"
    return out, path


def test_every_example_is_tested_and_short():
    scripts = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
    assert scripts == sorted((*NAMES, "set_rbm"))  # set_rbm has its own file, tests/test_example_set_rbm.py
    for name in NAMES:
        text = (EXAMPLES / f"{name}.py").read_text()
        assert len(text.splitlines()) <= 160, name  # "short": about 150 lines
        assert "--smoke" in text and "topo._" not in text and "from topo._" not in text, name


def test_set_vs_dense(smoke):
    out, path = _ok(smoke, "set_vs_dense")
    header = next(ln for ln in out.splitlines() if ln.split()[:2] == ["dataset", "model"])
    assert "test acc %" in header and "params" in header
    summary = pd.read_csv(path / "digits" / "summary.csv").set_index("model")
    assert list(summary.index) == ["dense", "set", "static"]
    runs = pd.read_csv(path / "digits" / "runs.csv").set_index("model")
    # Parameter counts against the models' shapes: a dense 64-32-32-10 MLP, and ER edges + biases.
    assert runs.loc["dense", "params"] == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    t = topo.load(path / "digits" / "set-seed0" / "topology.npz")
    assert runs.loc["set", "params"] == t.num_edges + 32 + 32 + 10 == runs.loc["static", "params"]
    metrics = pd.read_csv(path / "digits" / "set-seed0" / "metrics.csv")
    assert runs.loc["set", "test_acc"] == pytest.approx(metrics.test_acc.iloc[-1])
    # SET rewired after epoch 1; static never did, from the same start.
    h_set = topo.History.load(path / "digits" / "set-seed0" / "history.npz")
    h_static = topo.History.load(path / "digits" / "static-seed0" / "history.npz")
    assert h_set.initial == h_static.initial
    assert h_set.frame().query("epoch == 1").births.sum() > 0
    assert h_static.frame().query("epoch == 1").births.sum() == 0
    # regrown edges start at 0 (--regrow-init zeros, SET's Keras code); survivors keep nonzero values
    g1, born = h_set.topology(1.0).layers[0], h_set.changes(1.0)[0].births
    at_birth = torch.isin(g1.keys(), born[1] * g1.n_in + born[0])
    assert int(at_birth.sum()) == born.shape[1]
    assert (g1.weight[at_birth] == 0).all() and (g1.weight[~at_birth] != 0).all()
    # the sparse start is SET's Keras init: Glorot on the dense fans (64-32: sqrt(6 / 96)), not the degrees
    w0 = h_set.weights(0)[0]
    assert 0.9 * (6 / 96) ** 0.5 < w0.abs().max() <= (6 / 96) ** 0.5
    config = json.loads((path / "digits" / "set-seed0" / "config.json").read_text())
    assert config["init"] == "xavier_uniform_dense" and config["standardize"] is True
    assert (path / "digits" / "set-seed0" / "report.html").is_file()
    assert "SET − static" in out and "SET − dense" in out


def test_cosine_extreme_sparsity(smoke):
    out, path = _ok(smoke, "cosine_extreme_sparsity")
    s = pd.read_csv(path / "digits" / "summary.csv")
    assert list(s.rule) == ["set", "ctre-sim", "ctre-seq", "rigl", "cosine+random", "magnitude+cosine",
                            "cosine+cosine", "static"]
    # every rule keeps the edge count of the shared ε = 1 start
    t0 = topo.erdos_renyi([64, 64, 64, 10], epsilon=1.0, seed=0)
    assert (s.edges == t0.num_edges).all()
    for rule in ("ctre-sim", "cosine+cosine"):
        h = topo.History.load(path / "digits" / f"{rule}-seed0" / "history.npz")
        assert h.initial.fingerprint() == t0.fingerprint() and h.frame().query("epoch == 1").births.sum() > 0
    config = json.loads((path / "digits" / "ctre-sim-seed0" / "config.json").read_text())
    assert config["mode"] == "exact" and config["regrow_init"] == "zeros" and config["zeta"] == 0.2
    assert config["dropout"] == 0.0 and config["init"] == "kaiming_uniform"  # CTRE's code: no dropout
    assert "best cosine rule" in out and (path / "digits" / "ctre-sim-seed0" / "report.html").is_file()


def test_input_importance(smoke):
    out, path = _ok(smoke, "input_importance")
    imp = pd.read_csv(path / "importance.csv")
    h = topo.History.load(path / "run" / "history.npz")
    g = h.final.layers[0]
    assert len(imp) == 64
    assert imp["degree, epoch 2"].tolist() == g.out_degree().tolist()
    assert imp["strength, epoch 2"].to_numpy() == pytest.approx(g.strength("out").numpy())
    sel = pd.read_csv(path / "selection.csv")
    assert {"random", "variance", "top-10 by strength, epoch 2"} <= set(sel.method)
    assert (sel.k == 10).all() and sel.accuracy.between(0, 1).all()
    assert (path / "importance_maps.png").stat().st_size > 1000
    assert "Target: top-10 by strength beats random-10" in out


def test_scale_free(smoke):
    out, path = _ok(smoke, "scale_free")
    sf = pd.read_csv(path / "scale_free.csv")
    h = topo.History.load(path / "run" / "history.npz")
    assert sorted(sf.epoch.unique()) == [0.0, h.epochs[-1]]
    assert len(sf) == 2 * 2 * h.num_layers
    row = sf[(sf.epoch == 0) & (sf.layer == 0) & (sf.side == "out")].iloc[0]
    deg = h.initial.layers[0].out_degree().double()
    assert row["mean"] == pytest.approx(float(deg.mean())) and row["max"] == int(deg.max())
    assert row["std/mean"] == pytest.approx(float(deg.std(unbiased=False) / deg.mean()))
    assert sf.loc[sf.scale_free, "plausible"].all()  # scale-free (a decade of tail) implies CSN-plausible
    assert "What the tests conclude" in out and "Broido–Clauset" in out and "Heterogeneity" in out


def test_plug_into_torch(smoke):
    out, path = _ok(smoke, "plug_into_torch")
    assert "SparseLinear(in_features=128, out_features=64" in out
    assert "identical outputs = True" in out
    h = topo.History.load(path / "history.npz")
    assert h.initial.sizes == (128, 64, 10) and h.epochs == [0.0, 1.0]
    metrics = pd.read_csv(path / "metrics.csv")
    assert metrics.births.iloc[0] == h.frame().query("epoch == 1").births.sum() > 0
    assert (path / "report.html").is_file() and (path / "model.pt").is_file()


def test_gephi_timeline(smoke):
    import networkx as nx

    out, path = _ok(smoke, "gephi_timeline")
    h = topo.History.load(path / "run" / "history.npz")
    G = nx.read_gexf(path / "evolution.gexf")
    ever = sum(len({(s, d) for s, d in zip(iv["src"].tolist(), iv["dst"].tolist())})
               for iv in (h.edge_intervals(k) for k in range(h.num_layers)))
    assert G.number_of_nodes() == sum(h.initial.sizes) and G.number_of_edges() == ever
    assert "Enable timeline" in out and "evolution.gexf" in out


def test_sparsify_your_model(smoke):
    out, path = _ok(smoke, "sparsify_your_model")
    assert "dense values kept at the edges = True" in out
    assert "MLP block sparsified: ['mlp.fc1', 'mlp.fc2'], sizes (32, 128, 32)" in out
    # The CNN head: SET after epoch 1 of 2 (every epoch but the last), the edge count kept.
    h = topo.History.load(path / "cnn" / "history.npz")
    assert h.initial.sizes == (128, 64, 10) and h.epochs == [0.0, 1.0]
    assert h.initial.layers[0].num_edges == round(10 * (128 + 64))  # SET's ε = 10
    m = pd.read_csv(path / "cnn" / "metrics.csv")
    assert m.births.tolist() == [h.frame().query("epoch == 1").births.sum(), 0] and m.births.iloc[0] > 0
    assert (m.num_edges == h.initial.num_edges).all()
    # The transformer block: RigL every 10 optimizer steps until 75 % of 2 epochs of 23 batches (step 34).
    h = topo.History.load(path / "transformer" / "history.npz")
    assert h.initial.sizes == (32, 128, 32) and h.epochs == [0.0, 10.0, 20.0, 30.0]
    births = h.frame().groupby("epoch").births.sum()
    assert births.loc[10.0] > births.loc[30.0] > 0  # cosine decay of the drop fraction
    assert "RigL updates: 3" in out


def test_feature_selection(smoke):
    from sklearn.ensemble import ExtraTreesClassifier

    out, path = _ok(smoke, "feature_selection")
    df = pd.read_csv(path / "results.csv")
    assert df.selector.tolist() == ["quickselection", "set_mlp_strength", "mutual_info", "random"]
    assert (df.k == 10).all() and df.accuracy.between(0, 1).all()
    # Every accuracy is that of ExtraTrees on the features the row names, recomputed here.
    (X, y), (T, t) = (topo.datasets.load("digits", s) for s in ("train", "test"))
    X, T = topo.datasets.standardize(X, T)
    for row in df.itertuples():
        f = [int(v) for v in row.features.split()]
        assert len(set(f)) == 10
        clf = ExtraTreesClassifier(n_estimators=50, random_state=row.seed, n_jobs=1).fit(X[:, f], y)
        assert clf.score(T[:, f], t) == pytest.approx(row.accuracy)
    assert "| digits | quickselection |" in (path / "results.md").read_text()
