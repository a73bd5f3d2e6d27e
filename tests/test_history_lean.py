"""Lean histories: weights every K updates, float16 or none; the append-only history.npz; old files still load."""

from pathlib import Path

import numpy as np
import pytest
import torch

import topo
from topo.errors import TopologyError, TopologyFormatError
from topo.graph.history import HistoryWeights, parse_history_weights

V1 = Path(__file__).parent / "data" / "history_v1.npz"


def _evolver(history_weights="all", seed=0):
    model = topo.compile(topo.erdos_renyi([12, 10, 4], epsilon=3, seed=seed), seed=seed, backend="csr")
    return model, topo.Evolver(model, topo.rules.SET(0.3), seed=seed, history_weights=history_weights)


def test_parse_history_weights():
    assert parse_history_weights("all") == HistoryWeights(1, torch.float32)
    assert parse_history_weights("every:3") == HistoryWeights(3, torch.float32)
    assert parse_history_weights("none:float16") == HistoryWeights(0, torch.float16)
    assert parse_history_weights(2) == HistoryWeights(2, torch.float32)
    for bad in ("every:0", "some", "every:x", "all:float8", True):
        with pytest.raises(TopologyError, match="history weights"):
            parse_history_weights(bad)


def test_weights_every_k_updates_in_float16(tmp_path):
    model, ev = _evolver("every:2:float16")
    for epoch in range(1, 6):
        ev.step(epoch=epoch)
    h = ev.history_
    assert [h.weights(e) is None for e in (1, 2, 3, 4, 5)] == [True, False, True, False, True]
    w4 = h.weights(4)
    assert [w.dtype for w in w4] == [torch.float16, torch.float16]
    # Recorded values are the model's at that update, rounded to half precision (the model is unchanged
    # since epoch 4 only by the evolution of epoch 5, so compare at epoch 4 through a fresh run).
    model2, ev2 = _evolver("all")
    for epoch in range(1, 5):
        ev2.step(epoch=epoch)
    assert all(torch.equal(a, b.to(torch.float16)) for a, b in zip(w4, ev2.history_.weights(4)))
    h.save(tmp_path / "h.npz")
    back = topo.History.load(tmp_path / "h.npz")
    assert back.epochs == h.epochs and back.weights(4)[0].dtype == torch.float16
    assert all(torch.equal(a, b) for a, b in zip(back.weights(4), w4)) and back.weights(3) is None
    assert back.topology(5) == h.topology(5)


def test_no_weights_keeps_structure():
    model, ev = _evolver("none")
    for epoch in (1, 2):
        ev.step(epoch=epoch)
    assert ev.history_.weights(1) is None and ev.history_.weights(2) is None
    assert [g.keys().tolist() for g in ev.history_.topology(2).layers] == \
        [g.keys().tolist() for g in model.topology().layers]


def test_save_appends_and_never_rewrites_old_bytes(tmp_path):
    model, ev = _evolver()
    path = tmp_path / "history.npz"
    ev.step(epoch=1)
    ev.history_.save(path)
    sizes, heads = [], []
    for epoch in (2, 3, 4):
        before = path.read_bytes()
        ev.step(epoch=epoch)
        ev.history_.save(path)
        now = path.read_bytes()
        assert now[:len(before)] == before  # appended: everything written before is untouched
        assert now.count(b"PK\x05\x06") == epoch  # every earlier end record is still there
        sizes.append(len(now) - len(before))
        back = topo.History.load(path)
        assert back.epochs == ev.history_.epochs and back.topology("last") == ev.history_.topology("last")
        heads.append(len(now))
    ev.history_.save(path)  # nothing new: the file is left as it is
    assert len(path.read_bytes()) == heads[-1]
    # A different history of the same sizes is never appended onto it.
    other_model, other = _evolver(seed=1)
    other.step(epoch=1)
    other.history_.save(path)
    assert topo.History.load(path).topology(1) == other.history_.topology(1)
    with pytest.raises(TopologyError, match="prefix"):
        ev.history_.save(path, append=True)


def test_resumed_history_with_the_same_epochs_rewrites(tmp_path):
    # A history cut back to a checkpoint and re-evolved has the file's epoch labels but other steps.
    _, ev = _evolver()
    path = tmp_path / "history.npz"
    for epoch in (1, 2):
        ev.step(epoch=epoch)
    ev.history_.save(path)
    _, ev2 = _evolver()
    ev2.step(epoch=1)
    ev2.generator.manual_seed(99)  # a different second step
    ev2.step(epoch=2)
    ev2.step(epoch=3)
    ev2.history_.save(path)
    back = topo.History.load(path)
    assert back.epochs == [0.0, 1.0, 2.0, 3.0] and back.topology(2) == ev2.history_.topology(2)


def test_a_cut_short_append_leaves_the_previous_history_readable(tmp_path):
    _, ev = _evolver()
    path = tmp_path / "history.npz"
    for epoch in (1, 2):
        ev.step(epoch=epoch)
    ev.history_.save(path)
    good = path.read_bytes()
    ev.step(epoch=3)
    ev.history_.save(path)
    full = path.read_bytes()
    # Crash in the middle of the append: the new arrays half written, no new directory.
    path.write_bytes(full[:len(good) + (len(full) - len(good)) // 2])
    back = topo.History.load(path)
    assert back.epochs == [0.0, 1.0, 2.0] and back.topology(2) == ev.history_.topology(2)
    path.write_bytes(b"PK\x05\x06" + b"\0" * 30)
    with pytest.raises(TopologyFormatError):
        topo.History.load(path)


def test_the_first_layout_still_loads(tmp_path):
    h = topo.History.load(V1)  # written by topo before the append layout
    assert h.epochs == [0.0, 1.0, 2.0] and list(h.initial.sizes) == [6, 5, 3]
    assert [c.births.shape[1] for c in h.changes(2.0)] == [4, 3]
    assert h.weights(1.0) is not None and h.weights(2.0) is None
    # Saving it again writes the new layout; both read back the same.
    h.save(tmp_path / "v2.npz")
    with np.load(tmp_path / "v2.npz") as z:
        assert "layout" in z.files and "epochs" not in z.files
    h2 = topo.History.load(tmp_path / "v2.npz")
    assert h2.epochs == h.epochs and all(h2.topology(e) == h.topology(e) for e in h.epochs)
    assert all(torch.equal(a, b) for a, b in zip(h2.weights(1.0), h.weights(1.0)))


def test_update_steps_survive_the_append_layout(tmp_path):
    # Step-wise schedules label updates by optimizer step; rewriting and appending both keep them.
    model, ev = _evolver()
    path = tmp_path / "h.npz"
    for step in (4, 8, 12):
        ev.step(epoch=step / 8, step=step)
        ev.history_.save(path)  # the first save writes, the next ones append
    back = topo.History.load(path)
    assert back.steps == [0, 4, 8, 12] and back.epochs == [0.0, 0.5, 1.0, 1.5]
    assert back.frame().query("layer == 0").step.tolist() == [0.0, 4.0, 8.0, 12.0]
    ev.history_.save(tmp_path / "whole.npz", append=False)
    assert topo.History.load(tmp_path / "whole.npz").steps == [0, 4, 8, 12]
