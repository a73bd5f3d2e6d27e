"""Trainer drives evolution by the evolver's Schedule: update steps, stop_at, ζ by the right position,
total from the run length, History steps, bit-identical resume mid-schedule; topo train's schedule flags."""

import json
import math

import pandas as pd
import pytest
import torch

import topo
from topo.rules import SET, Schedule

TIMINGS = ["train_seconds", "evolve_seconds"]
SIZES = [12, 24, 3]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(240, 12, generator=g)
    return (X, (X[:, 0] > 0).long() + (X[:, 1] > 0).long()), None


class RecordingSET(SET):
    """SET that remembers the ζ of every layer it rewires."""

    def __init__(self, zeta=0.3):
        super().__init__(zeta)
        self.seen = []

    def __call__(self, graph, context=None, zeta=None):
        if graph.density < 1.0:  # a full layer (here 24→3) has nothing to rewire
            self.seen.append(zeta)
        return super().__call__(graph, context, zeta=zeta)


def make(schedule, epochs, out=None, resume=False, loss=None):
    model = topo.compile(topo.erdos_renyi(SIZES, epsilon=3, seed=0), dropout=0.2, seed=0)
    ev = topo.Evolver(model, RecordingSET(0.3), schedule=schedule, seed=0)
    return topo.Trainer(model, evolver=ev, epochs=epochs, batch_size=32, lr=0.05, seed=0, out_dir=out,
                        resume=resume, loss=loss, progress=False)


def test_every_k_steps_stop_at_and_cosine_decay_by_the_step(data):
    # 240 rows / 32 = 8 steps per epoch, 6 epochs: total = 48 steps, no updates from 0.75 * 48 = 36 on.
    t = make(Schedule(decay="cosine", every=4, stop_at=0.75), 6).fit(*data[:1])
    steps = [4, 8, 12, 16, 20, 24, 28, 32]
    assert t.evolver.schedule.total == 48 and t.steps_per_epoch_ == 8 and t.step_ == 48
    assert t.history_.steps == [0] + steps
    assert t.history_.epochs == [0.0] + [s / 8 for s in steps]
    zetas = [0.3 * 0.5 * (1 + math.cos(math.pi * s / 36)) for s in steps]
    assert t.evolver.rule.seen == pytest.approx(zetas, rel=1e-12)  # layer 0 (layer 1, 24→3 at ε=3, is dense)
    assert t.metrics_.evolve_seconds.iloc[:4].gt(0).all() and t.metrics_.evolve_seconds.iloc[4:].eq(0).all()
    frame = t.history_.frame()
    assert frame.query("layer == 0").step.tolist() == [0.0] + [float(s) for s in steps]


def test_per_epoch_schedule_stops_where_it_says(data):
    # stop_at=0.5 of 6 epochs: updates after epochs 1 and 2 only (not 3, 4, 5 as before).
    t = make(Schedule(stop_at=0.5, decay="linear"), 6).fit(*data[:1])
    assert t.history_.epochs == [0.0, 1.0, 2.0] and t.history_.steps == [0, 8, 16]
    assert t.evolver.rule.seen == pytest.approx([0.3 * (1 - 1 / 3), 0.3 * (1 - 2 / 3)])
    # The default: every epoch but the last (total = epochs), ζ constant.
    t = make(None, 3).fit(*data[:1])
    assert t.history_.epochs == [0.0, 1.0, 2.0] and t.evolver.rule.seen == [0.3] * 2


def test_schedule_without_total_counts_every_epoch_and_total_skips_the_last():
    assert Schedule().due(epoch=10) is True  # no run length known: every epoch is due
    assert Schedule(total=10).due(epoch=9) is True and Schedule(total=10).due(epoch=10) is False


def test_resume_mid_schedule_is_bit_identical(data, tmp_path):
    sched = lambda: Schedule(decay="cosine", every=3, stop_at=0.75)  # noqa: E731
    straight = make(sched(), 5, out=tmp_path / "a").fit(*data[:1])
    calls = {"n": 0}

    def crashing(out, y):  # dies in epoch 3, step 5
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 5:
            raise RuntimeError("simulated crash")
        return torch.nn.functional.cross_entropy(out, y)

    with pytest.raises(RuntimeError, match="simulated crash"):
        make(sched(), 5, out=tmp_path / "b", loss=crashing).fit(*data[:1])
    assert topo.History.load(tmp_path / "b" / "history.npz").steps == [0, 3, 6, 9, 12, 15]
    resumed = make(sched(), 5, out=tmp_path / "b", resume=True).fit(*data[:1])
    pd.testing.assert_frame_equal(straight.metrics_.drop(columns=TIMINGS), resumed.metrics_.drop(columns=TIMINGS))
    assert straight.model.topology() == resumed.model.topology()
    a, b = topo.History.load(tmp_path / "a" / "history.npz"), topo.History.load(tmp_path / "b" / "history.npz")
    assert a.epochs == b.epochs and a.steps == b.steps == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert all(x == y for (_, x), (_, y) in zip(a, b))


def test_history_steps_round_trip(tmp_path):
    t0 = topo.from_edges([2, 2], [([0, 1], [0, 1])])
    h = topo.History(t0)
    h.record(0.5, [topo.LayerChange(births=[[1], [0]], deaths=[[0], [0]])], step=4)
    h.record(1.0, [topo.LayerChange()])
    h.save(tmp_path / "h.npz")
    back = topo.History.load(tmp_path / "h.npz")
    assert back.steps == [0, 4, None] and back.epochs == [0.0, 0.5, 1.0]
    with pytest.raises(topo.TopologyError, match="step"):
        h.record(2.0, [topo.LayerChange()], step=-3)


def test_cli_rigl_means_rigls_schedule_and_flags_override(tmp_path, capsys):
    from topo.cli import main

    # digits: 1438 training rows / 16 = 90 steps per epoch; 2 epochs = 180 steps; RigL stops at 135.
    out = tmp_path / "rigl"
    base = ["train", "--dataset", "digits", "--hidden", "16", "--epsilon", "4", "--epochs", "2", "--batch-size",
            "16", "--quiet"]
    assert main(base + ["--rule", "rigl", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["update_every"], cfg["update_until"], cfg["zeta_decay"]) == ("100", 0.75, "cosine")
    h = topo.History.load(out / "history.npz")
    assert h.steps == [0, 100] and h.epochs == [0.0, 100 / 90]
    out = tmp_path / "set"
    assert main(base + ["--rule", "set", "--update-every", "30", "--update-until", "0.5", "--zeta-decay", "linear",
                        "--max-samples", "64", "--out", str(out)]) == 0
    assert topo.History.load(out / "history.npz").steps == [0, 30, 60]
    assert main(base + ["--rule", "set", "--update-every", "often", "--out", str(tmp_path / "bad")]) == 2
    assert "update-every" in capsys.readouterr().err and not (tmp_path / "bad").exists()
