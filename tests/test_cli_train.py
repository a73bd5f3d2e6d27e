"""``topo train``: the run directory it writes, --resume, every rule, and clear errors for bad input."""

import json

import pandas as pd
import pytest
import torch

import topo
from topo.cli import main
from topo.train import checkpoint as _checkpoint

DATA = "synthetic:n=300,features=12,classes=3,informative=6,sep=2"
BASE = ["train", "--dataset", DATA, "--hidden", "16,16", "--epsilon", "4", "--batch-size", "32",
        "--lr", "0.05", "--quiet"]
TIMINGS = ["train_seconds", "evolve_seconds"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tests share two cores (pytest -n 2, other jobs): more intra-op threads than free cores make
    # OpenMP spin-wait and a tiny model train 30x slower. Results do not depend on it.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train(out, *extra):
    return main([*BASE, "--out", str(out), *extra])


def test_train_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "3", "--rule", "set", "--zeta", "0.2", "--seed", "3") == 0
    assert "test acc" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sizes"] == [12, 16, 16, 3] and cfg["rule"] == "set" and cfg["zeta"] == 0.2
    assert cfg["seed"] == 3 and cfg["dataset"].startswith("synthetic:n=300") and cfg["epochs"] == 3
    assert cfg["batch_size"] == 32 and cfg["hidden"] == "16,16" and cfg["epsilon"] == 4.0
    assert {"topo", "torch", "numpy", "python"} <= set(cfg["versions"])
    m = pd.read_csv(out / "metrics.csv")
    assert list(m.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                               "num_edges", "train_seconds", "evolve_seconds"]
    assert m.epoch.tolist() == [1, 2, 3] and m.test_acc.between(0, 1).all()
    t = topo.load(out / "topology.npz")
    expected = topo.erdos_renyi([12, 16, 16, 3], epsilon=4, seed=3)
    assert t.sizes == (12, 16, 16, 3) and t.weighted
    assert [g.num_edges for g in t] == [g.num_edges for g in expected]
    assert m.num_edges.iloc[0] == expected.num_edges
    h = topo.History.load(out / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0]
    assert h.topology(0).fingerprint() == expected.fingerprint()  # epoch 0 is the seeded ER topology
    assert _checkpoint.load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


def test_density_and_sizes_follow_the_arguments(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", DATA, "--hidden", "20", "--density", "0.5", "--epochs", "1",
                 "--rule", "static", "--quiet", "--out", str(out)]) == 0
    t = topo.load(out / "topology.npz")
    assert t.sizes == (12, 20, 3) and [g.num_edges for g in t] == [120, 30]


def test_resume_extends_the_run_bit_identically(tmp_path):
    assert train(tmp_path / "a", "--epochs", "3") == 0
    assert train(tmp_path / "b", "--epochs", "2") == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--epochs", "3", "--quiet"]) == 0
    a, b = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns=TIMINGS) for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    assert topo.load(tmp_path / "a" / "topology.npz") == topo.load(tmp_path / "b" / "topology.npz")
    ha, hb = (topo.History.load(tmp_path / d / "history.npz") for d in "ab")
    assert ha.epochs == hb.epochs == [0.0, 1.0, 2.0] and ha.final == hb.final
    assert json.loads((tmp_path / "b" / "config.json").read_text())["epochs"] == 3
    ca, cb = (_checkpoint.load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in "ab")
    assert all(torch.equal(ca[k], cb[k]) for k in ca)


@pytest.mark.parametrize("rule", ["dense", "static", "set", "ctre-sim", "ctre-seq", "rigl", "cosine+random"])
def test_every_rule_trains(tmp_path, rule):
    out = tmp_path / "run"
    extra = ["--val-fraction", "0.2"] if rule == "ctre-seq" else []  # its switch reads a validation split
    assert train(out, "--epochs", "2", "--rule", rule, *extra) == 0
    m = pd.read_csv(out / "metrics.csv")
    assert m.epoch.tolist() == [1, 2] and m.train_loss.notna().all()
    dense_edges = 12 * 16 + 16 * 16 + 16 * 3
    assert (m.num_edges == dense_edges).all() == (rule == "dense")
    h = topo.History.load(out / "history.npz")
    # --rule rigl means RigL's schedule (every 100 steps): 2 epochs of digits are 24 steps, no update yet.
    assert h.epochs == ([0.0] if rule in ("dense", "rigl") else [0.0, 1.0])


@pytest.mark.parametrize("args, message", [
    (["--zeta", "1.5"], "zeta must be a number in [0, 1]"),
    (["--zeta", "-0.1"], "zeta must be a number in [0, 1]"),
    (["--rule", "bogus"], "unknown rule 'bogus'"),
    (["--dataset", "no-such-data"], "no-such-data"),
    (["--hidden", ""], "hidden layer sizes are empty"),
    (["--hidden", "16,0"], "positive integers"),
    (["--hidden", "16,-4"], "positive integers"),
    (["--hidden", "16,x"], "not an integer"),
    (["--epsilon", "-1"], "epsilon"),
    (["--density", "1.5"], "density"),
    (["--dropout", "1.0"], "dropout"),
    (["--epochs", "-2"], "epochs"),
    (["--batch-size", "0"], "batch_size"),
    (["--activation", "swish9"], "swish9"),
    (["--init", "lecun"], "'lecun'"),
    (["--regrow-init", "normal:x"], "normal:x"),
    (["--history-weights", "every:0"], "every:0"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    base = list(BASE)
    if "--epsilon" in args or "--density" in args:
        i = base.index("--epsilon")
        del base[i:i + 2]
    assert main([*base, "--epochs", "1", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("topo train: error:") and message in err, err
    assert not (out / "checkpoint.pt").exists()


def test_existing_run_is_refused_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert train(out, "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_errors(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume", "--quiet"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.3", "--epochs", "2", "--quiet"]) == 2
    assert "--lr 0.3 differs from the run's 0.05" in capsys.readouterr().err
    (out / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:200])
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    # The manifest catches it before torch.load reads a byte of it.
    assert "checkpoint.pt" in err and "is not the file topo wrote there" in err


def test_resume_after_a_crash_before_the_first_checkpoint_starts_afresh(tmp_path):
    # config.json is written first; a run killed during epoch 1 has nothing else.
    assert train(tmp_path / "a", "--epochs", "2") == 0
    out = tmp_path / "b"
    out.mkdir()
    (out / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    a, b = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns=TIMINGS) for d in "ab")
    pd.testing.assert_frame_equal(a, b)


def test_bench_training_runs_small(tmp_path, capsys):
    # Smoke test of `topo bench training` on a tiny network: it runs and reports; no speed is asserted.
    out = tmp_path / "bench.json"
    assert main(["bench", "training", "--dataset", DATA, "--hidden", "16,16", "--epsilon", "4", "--batch", "32",
                 "--batches", "3", "--rounds", "1", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch time dense / SET" in text and "3 batches per epoch, scaled x" in text
    res = json.loads(out.read_text())
    assert res["sizes"] == [12, 16, 16, 3] and len(res["set_epoch_s"]) == 2 and len(res["dense_epoch_s"]) == 1
    assert res["edges"]["dense"] == 12 * 16 + 16 * 16 + 16 * 3 > res["edges"]["set"]
    assert res["speedup"] == res["dense_epoch_median_s"] / res["set_epoch_median_s"]


def test_standardize_is_recorded_changes_inputs_and_survives_resume(tmp_path):
    raw, std, part = tmp_path / "raw", tmp_path / "std", tmp_path / "part"
    assert train(raw, "--epochs", "2", "--rule", "static", "--no-standardize") == 0
    assert train(std, "--epochs", "2", "--rule", "static") == 0   # z-scored by default
    assert json.loads((std / "config.json").read_text())["standardize"] is True
    assert json.loads((raw / "config.json").read_text())["standardize"] is False
    m_raw, m_std = pd.read_csv(raw / "metrics.csv"), pd.read_csv(std / "metrics.csv")
    assert m_raw.train_loss.iloc[0] != m_std.train_loss.iloc[0]   # the model saw other inputs
    # a resumed run standardises again (the flag comes from config.json): same as one uninterrupted run
    assert train(part, "--epochs", "1", "--rule", "static") == 0
    assert main(["train", "--out", str(part), "--resume", "--epochs", "2", "--quiet"]) == 0
    m_part = pd.read_csv(part / "metrics.csv")
    pd.testing.assert_frame_equal(m_part.drop(columns=TIMINGS), m_std.drop(columns=TIMINGS))


def test_init_and_regrow_init_reach_the_model_and_the_config(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--epochs", "2", "--init", "xavier_uniform_dense", "--regrow-init", "normal:0.05") == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["init"], cfg["regrow_init"]) == ("xavier_uniform_dense", "normal:0.05")
    # the epoch-0 weights of layer 1 (16 -> 16) lie inside the dense Glorot bound sqrt(6 / 32), not the
    # effective-fan He bound (mean in-degree 8: sqrt(6 / 8))
    w0 = topo.graph.History.load(out / "history.npz").weights(0)[1]
    assert 0.9 * (6 / 32) ** 0.5 < w0.abs().max() <= (6 / 32) ** 0.5
    default = tmp_path / "default"   # --rule set's recipe: He-uniform on the dense fan-in, AllReLU
    assert train(default, "--epochs", "1") == 0
    cfg = json.loads((default / "config.json").read_text())
    assert (cfg["activation"], cfg["init"], cfg["regrow_init"]) == \
        ("allrelu", "kaiming_uniform_dense", "kaiming_uniform_dense")
    w0 = topo.graph.History.load(default / "history.npz").weights(0)[1].abs().max()
    assert 0.9 * (6 / 16) ** 0.5 < w0 <= (6 / 16) ** 0.5
    other = tmp_path / "rigl"   # other rules keep the effective-fan He start
    assert train(other, "--epochs", "1", "--rule", "rigl") == 0
    assert json.loads((other / "config.json").read_text())["init"] == "kaiming_uniform"
    assert topo.graph.History.load(other / "history.npz").weights(0)[1].abs().max() > (6 / 16) ** 0.5


def test_history_weights_every_k_in_float16(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--epochs", "4", "--history-weights", "every:2:float16") == 0
    h = topo.History.load(out / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0, 3.0]
    assert [h.weights(e) is None for e in (1.0, 2.0, 3.0)] == [True, False, True]
    assert {w.dtype for w in h.weights(2.0)} == {torch.float16}
    assert json.loads((out / "config.json").read_text())["history_weights"] == "every:2:float16"
    none = tmp_path / "none"
    assert train(none, "--epochs", "3", "--history-weights", "none") == 0
    h = topo.History.load(none / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0] and h.weights(1.0) is None and h.weights(2.0) is None
