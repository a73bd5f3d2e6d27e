"""Trainer(task=...): reconstruction (autoencoders, denoising) and regression with the classifier's machinery
— against hand-written loops, with checkpoints, bit-identical resume and evolution."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

import topo
from topo.cli.factory import dense_mlp
from topo.errors import ParameterError

TIMINGS = ["train_seconds", "evolve_seconds"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(200, 12, generator=g)
    w = torch.randn(12, 2, generator=g)
    return X, X @ w + 0.01 * torch.randn(200, 2, generator=g)


def hand_loop(model, X, target, epochs, bs, lr, seed, loss_fn):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(epochs):
        total = 0.0
        perm = torch.randperm(X.shape[0], generator=g)
        for i in range(0, X.shape[0], bs):
            idx = perm[i:i + bs]
            loss = loss_fn(model(X[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
    return total / X.shape[0]


@pytest.mark.parametrize("task, loss", [("reconstruct", "mse"), ("reconstruct", "bce_logits"), ("regress", "mse"),
                                        ("regress", "l1")])
def test_tasks_match_a_hand_written_loop(data, task, loss):
    X, Y = data
    target = X if task == "reconstruct" else Y
    model = dense_mlp([12, 6, target.shape[1]], seed=1)
    ref = copy.deepcopy(model)
    train = X if task == "reconstruct" else (X.numpy().astype(np.float64), Y.numpy())
    t = topo.Trainer(model, task=task, loss=loss, epochs=2, batch_size=40, lr=0.05, seed=3,
                     progress=False).fit(train, train)
    fn = {"mse": torch.nn.functional.mse_loss, "l1": torch.nn.functional.l1_loss,
          "bce_logits": torch.nn.functional.binary_cross_entropy_with_logits}[loss]
    expected = hand_loop(ref, X, target, 2, 40, 0.05, 3, fn)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    m = t.metrics_
    assert m.train_loss.iloc[-1] == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        assert m.test_loss.iloc[-1] == pytest.approx(float(fn(ref(X), target)), rel=1e-5)
    assert m.train_acc.isna().all() and m.test_acc.isna().all()
    assert t.evaluate(train)["loss"] == pytest.approx(m.test_loss.iloc[-1], rel=1e-6)
    assert np.isnan(t.evaluate(train)["acc"])


def sparse_autoencoder(seed=0):
    return topo.compile(topo.erdos_renyi([12, 20, 12], epsilon=3, seed=seed), dropout=0.1, seed=seed)


def dae(epochs, out=None, resume=False, rule="set", noise=0.2):
    model = sparse_autoencoder()
    ev = topo.Evolver(model, rule, seed=0)
    return topo.Trainer(model, task="reconstruct", noise=noise, evolver=ev, epochs=epochs, batch_size=32,
                        lr=0.05, seed=0, out_dir=out, resume=resume, progress=False)


def test_denoising_autoencoder_evolves_checkpoints_and_resumes_bit_identically(data, tmp_path):
    X, _ = data
    straight = dae(4, out=tmp_path / "a").fit(X[:160], X[160:])
    dae(2, out=tmp_path / "b").fit(X[:160], X[160:])
    resumed = dae(4, out=tmp_path / "b", resume=True).fit(X[:160], X[160:])
    pd.testing.assert_frame_equal(straight.metrics_.drop(columns=TIMINGS), resumed.metrics_.drop(columns=TIMINGS))
    assert straight.model.topology() == resumed.model.topology()
    assert straight.history_.epochs == [0.0, 1.0, 2.0, 3.0]
    m = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert m.train_acc.isna().all() and m.train_loss.iloc[-1] < m.train_loss.iloc[0]
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["task"] == "reconstruct" and cfg["noise"] == 0.2
    # The noise corrupts the training inputs only: same seed without noise trains differently,
    # the test loss is the clean reconstruction error.
    clean = dae(4, noise=0.0).fit(X[:160], X[160:])
    assert not np.allclose(clean.metrics_.train_loss, straight.metrics_.train_loss)
    assert straight.evaluate(X[160:])["loss"] == pytest.approx(straight.metrics_.test_loss.iloc[-1], rel=1e-6)
    # A resume with another noise level is refused.
    with pytest.raises(ParameterError, match="noise"):
        dae(5, out=tmp_path / "a", resume=True, noise=0.5).fit(X[:160], X[160:])


def test_gradient_growth_scores_the_tasks_loss(data):
    X, _ = data
    t = dae(2, rule="rigl", noise=0.0).fit(X[:160])
    assert t.history_.epochs == [0.0, 1.0] and t.evolver.loss_fn is not None
    out = torch.rand(5, 12)
    assert float(t.evolver.loss_fn(out, X[:5])) == pytest.approx(
        float(torch.nn.functional.mse_loss(out, X[:5], reduction="sum")) / 12, rel=1e-6)  # per-sample mean, summed


@pytest.mark.parametrize("kw, data_, match", [
    ({"task": "reconstruct"}, "wide", "gives 3 outputs, but train has 12 features"),
    ({"task": "regress"}, "regress3", "gives 3 outputs, but train has 2 targets"),
    ({"task": "reconstruct", "loss": "bce"}, "signed", r"loss 'bce' needs train X in \[0, 1\]"),
    ({"task": "regress", "loss": "cross_entropy"}, "regress3", "does not fit task 'regress'"),
    ({"task": "cluster"}, "wide", "unknown task 'cluster'"),
    ({"task": "reconstruct", "noise": -1.0}, "wide", "noise must be"),
])
def test_bad_task_settings_are_named(data, kw, data_, match):
    X, Y = data
    model = dense_mlp([12, 6, 3], seed=0)
    train = {"wide": X, "regress3": (X, Y), "signed": X - 0.5}[data_]
    with pytest.raises(ParameterError, match=match):
        topo.Trainer(model, epochs=1, progress=False, **kw).fit(train)


@pytest.mark.parametrize("task, extra, width", [("reconstruct", ["--noise", "0.1"], 64), ("regress", [], 10)])
def test_cli_task(tmp_path, capsys, task, extra, width):
    from topo.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--hidden", "16", "--epsilon", "4", "--epochs", "1", "--quiet",
            "--task", task, "--out", str(out), *extra]
    assert main(args) == 0
    assert "test loss" in capsys.readouterr().out
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    m = pd.read_csv(out / "metrics.csv")
    assert m.epoch.tolist() == [1, 2] and m.test_acc.isna().all() and np.isfinite(m.test_loss).all()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == task and cfg["sizes"] == [64, 16, width]
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--quiet", "--task", "classify"]) == 2
