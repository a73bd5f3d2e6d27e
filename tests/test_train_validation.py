"""The validation split: stratified and reproducible, its columns in metrics.csv, monitors that read it and never
the test set (CTRE-seq, early stopping), refusals without one, bit-identical resume; topo train's flags."""

import math

import pandas as pd
import pytest
import torch

import topo
from topo.errors import ParameterError
from topo.rules import CTRE
from topo.train.validation import epochs_without_improvement, split_validation

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
    X = torch.randn(300, 12, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X, y


def make(epochs=3, rule=None, out=None, resume=False, **kw):
    model = topo.compile(topo.erdos_renyi([12, 24, 3], epsilon=3, seed=0), dropout=0.1, seed=0)
    ev = None if rule is None else topo.Evolver(model, rule, seed=0)
    return topo.Trainer(model, evolver=ev, epochs=epochs, batch_size=32, lr=0.05, seed=0, out_dir=out,
                        resume=resume, progress=False, **kw)


def test_split_is_stratified_disjoint_and_reproducible(data):
    X, y = data
    (Xt, yt), (Xv, yv) = split_validation(X, y, 0.2, seed=3, stratify=True)
    assert Xv.shape[0] == math.ceil(0.2 * 300) and Xt.shape[0] + Xv.shape[0] == 300
    rows = {tuple(r) for r in torch.cat([Xt, Xv]).tolist()}
    assert len(rows) == 300 and rows == {tuple(r) for r in X.tolist()}  # a partition of the rows
    for c in range(3):  # every class keeps its share (to one row)
        assert abs(int((yv == c).sum()) - 0.2 * int((y == c).sum())) <= 1
    (Xt2, _), (Xv2, _) = split_validation(X, y, 0.2, seed=3, stratify=True)
    assert torch.equal(Xv, Xv2) and torch.equal(Xt, Xt2)
    (_, _), (Xv3, _) = split_validation(X, y, 0.2, seed=4, stratify=True)
    assert not torch.equal(Xv, Xv3)
    with pytest.raises(ParameterError, match="leaves 0 for training"):
        split_validation(X[:1], y[:1], 0.5, seed=0, stratify=False)


def test_val_columns_and_the_training_rows_left(data):
    X, y = data
    t = make(val_fraction=0.2).fit((X, y), (X[:50], y[:50]))
    m = t.metrics_
    assert list(m.columns[:7]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
    assert m.val_loss.notna().all() and m.val_acc.between(0, 1).all()
    assert t.steps_per_epoch_ == math.ceil(240 / 32)  # 60 of the 300 rows are held out
    # The validation columns are the model's loss and accuracy on exactly those held-out rows.
    (_, _), val = split_validation(X, y, 0.2, seed=0, stratify=True)
    ev = t.evaluate(val)
    assert ev["loss"] == pytest.approx(m.val_loss.iloc[-1], rel=1e-6) and ev["acc"] == m.val_acc.iloc[-1]
    plain = make().fit((X, y))
    assert plain.metrics_.val_loss.isna().all() and plain.steps_per_epoch_ == math.ceil(300 / 32)


class Spy(topo.Evolver):
    """An evolver that records the metrics its rule's monitors are given."""

    seen: list

    def step(self, *args, metrics=None, **kw):
        self.seen.append(dict(metrics or {}))
        return super().step(*args, metrics=metrics, **kw)


def test_ctre_seq_reads_validation_never_test(data):
    X, y = data
    model = topo.compile(topo.erdos_renyi([12, 24, 3], epsilon=3, seed=0), dropout=0.1, seed=0)
    ev = Spy(model, CTRE(variant="seq", patience=1), seed=0)
    ev.seen = []
    # A test set whose labels are shifted: its accuracy differs from the validation accuracy.
    test = (X[:100], (y[:100] + 1) % 3)
    t = topo.Trainer(model, evolver=ev, epochs=4, batch_size=32, lr=0.05, seed=0, progress=False,
                     val_fraction=0.25).fit((X, y), test)
    m = t.metrics_
    assert [s["val_acc"] for s in ev.seen] == m.val_acc.iloc[:3].tolist()
    assert all(s["val_acc"] != a for s, a in zip(ev.seen, m.test_acc))
    assert set().union(*ev.seen) == {"val_acc"}


def test_a_monitoring_rule_refuses_to_run_without_a_validation_split(data):
    X, y = data
    with pytest.raises(ParameterError, match="watches 'val_acc'.*validation split"):
        make(rule=CTRE(variant="seq")).fit((X, y), (X, y))
    with pytest.raises(ParameterError, match="either val= to fit or val_fraction"):
        make(val_fraction=0.1).fit((X, y), val=(X, y))
    with pytest.raises(ParameterError, match="patience_epochs=2 stops on val_loss"):
        make(patience_epochs=2).fit((X, y))
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ParameterError, match="val_fraction must be in"):
            make(val_fraction=bad).fit((X, y))
    with pytest.raises(ParameterError, match="patience_epochs must be a positive integer"):
        make(patience_epochs=0, val_fraction=0.1).fit((X, y))


def test_early_stopping_on_val_loss_and_a_resume_stays_stopped(data, tmp_path):
    X, y = data
    # Validation labels the opposite of training's: the better it learns, the worse val_loss gets.
    val = (X[:60], (y[:60] + 1) % 3)
    t = make(epochs=8, rule="set", patience_epochs=2, out=tmp_path / "r").fit((X, y), val=val)
    m = t.metrics_
    best = int(m.val_loss.idxmin())
    assert t.stopped_epoch_ == best + 3 == len(m) < 8
    assert epochs_without_improvement(m.to_dict("records")) == 2
    # The stopping epoch does not evolve: the model keeps the edges it was trained with.
    assert t.history_.epochs[-1] == t.stopped_epoch_ - 1
    again = make(epochs=10, rule="set", patience_epochs=2, out=tmp_path / "r", resume=True).fit((X, y), val=val)
    assert again.stopped_epoch_ == t.stopped_epoch_ and len(again.metrics_) == len(m)


def test_resume_with_a_carved_split_is_bit_identical(data, tmp_path):
    X, y = data
    a = make(epochs=3, rule="set", val_fraction=0.2, out=tmp_path / "a").fit((X, y), (X[:40], y[:40]))
    make(epochs=2, rule="set", val_fraction=0.2, out=tmp_path / "b").fit((X, y), (X[:40], y[:40]))
    b = make(epochs=3, rule="set", val_fraction=0.2, out=tmp_path / "b", resume=True).fit((X, y), (X[:40], y[:40]))
    pd.testing.assert_frame_equal(a.metrics_.drop(columns=TIMINGS), b.metrics_.drop(columns=TIMINGS))
    with pytest.raises(ParameterError, match="val_fraction"):
        make(epochs=4, rule="set", val_fraction=0.3, out=tmp_path / "b", resume=True).fit((X, y))


def test_topo_train_val_fraction_and_ctre_seq(tmp_path, capsys):
    from topo.cli import main

    base = ["train", "--dataset", "digits", "--hidden", "16", "--epsilon", "4", "--epochs", "2", "--quiet"]
    assert main(base + ["--rule", "ctre-seq", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "--val-fraction" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()
    assert main(base + ["--rule", "ctre-seq", "--val-fraction", "0.2", "--patience-epochs", "5",
                        "--out", str(tmp_path / "ok")]) == 0
    m = pd.read_csv(tmp_path / "ok" / "metrics.csv")
    assert m.val_acc.notna().all() and m.test_acc.notna().all()
    cfg = topo.runs.RunDir(tmp_path / "ok").read_config()
    assert cfg["val_fraction"] == 0.2 and cfg["patience_epochs"] == 5
