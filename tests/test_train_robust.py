"""Trainer as a library piece: the caller's RNG untouched, numpy/pandas inputs of any float type, labels
checked, a diverging loss stopped with the last good epoch kept, the strategy objects."""

import random

import numpy as np
import pandas as pd
import pytest
import torch

import topo
from topo.cli.factory import build_evolver, build_model
from topo.errors import ParameterError, ParameterTypeError
from topo.train import DataParallelStrategy, LocalStrategy, NonFiniteLossError, strategy_for
from topo.train import checkpoint as _checkpoint

SIZES = [12, 24, 3]
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
    centres = torch.randn(3, 12, generator=g) * 1.5
    y = torch.arange(200) % 3
    X = (centres[y] + torch.randn(200, 12, generator=g)).float()
    return (X[:160], y[:160]), (X[160:], y[160:])


def make(epochs=2, out=None, resume=False, lr=0.05, **kw):
    model = build_model(SIZES, "set", epsilon=3, dropout=0.3, seed=0)
    return topo.Trainer(model, evolver=build_evolver(model, "set", seed=0), epochs=epochs, batch_size=32,
                        lr=lr, seed=0, out_dir=out, resume=resume, progress=False, **kw)


def test_fit_leaves_the_callers_global_rng_untouched_and_results_unchanged(data, tmp_path):
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    a = make().fit(*data)
    b = make(out=tmp_path / "run").fit(*data)  # a run directory too
    c = make(epochs=3, out=tmp_path / "run", resume=True).fit(*data)  # resume restores a checkpoint's states
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(after[0], expected[0]) and np.array_equal(after[1], expected[1]) and after[2] == expected[2]
    # The dropout stream inside is the seeded one, whatever the caller's state.
    torch.manual_seed(999)
    d = make().fit(*data)
    for t in (b, d):
        pd.testing.assert_frame_equal(a.metrics_.drop(columns=TIMINGS), t.metrics_.drop(columns=TIMINGS))
    assert c.metrics_.epoch.tolist() == [1, 2, 3]


def test_rng_restored_when_fit_raises(data):
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    with pytest.raises(RuntimeError, match="boom"):
        make(loss=lambda out, y: (_ for _ in ()).throw(RuntimeError("boom"))).fit(*data)
    assert torch.equal(torch.rand(2), expected)


def test_float64_float16_numpy_and_pandas_inputs_train_like_float32(data):
    (X, y), (Xt, yt) = data
    ref = make().fit((X, y), (Xt, yt))
    X64, Xt64 = X.double().numpy(), Xt.double().numpy()
    for train, test in [((X64, y.numpy()), (Xt64, yt.numpy())),
                        ((pd.DataFrame(X64), pd.Series(y.numpy())), (pd.DataFrame(Xt64), pd.Series(yt.numpy()))),
                        ((X.half().numpy(), y.numpy().astype(np.int32)), (Xt.half(), yt))]:
        t = make().fit(train, test)
        assert t.metrics_.epoch.tolist() == [1, 2]
        if np.asarray(train[0]).dtype != np.float16:  # float64 → float32 is the same numbers; float16 rounds them
            pd.testing.assert_frame_equal(ref.metrics_.drop(columns=TIMINGS), t.metrics_.drop(columns=TIMINGS))
        else:
            assert abs(t.metrics_.train_loss.iloc[-1] - ref.metrics_.train_loss.iloc[-1]) < 0.05
    # A float64 model gets float64 data.
    model = topo.compile(topo.erdos_renyi(SIZES, epsilon=3, seed=0), seed=0).double()
    t = topo.Trainer(model, epochs=1, batch_size=32, progress=False).fit((X64, y.numpy()))
    assert t.model.sparse_layers[0].weight.dtype == torch.float64 and np.isfinite(t.metrics_.train_loss).all()


@pytest.mark.parametrize("bad, match", [
    (10, r"train y holds label 10 \(row 7\), but the model has 3 outputs, so labels must be in \[0, 2\]"),
    (-1, r"label -1 \(row 7\)"),
])
def test_labels_out_of_range_are_named(data, bad, match):
    (X, y), test = data
    y = y.clone()
    y[7] = bad
    with pytest.raises(ParameterError, match=match):
        make().fit((X, y), test)
    yt = test[1].clone()
    yt[0] = 3
    with pytest.raises(ParameterError, match="test y holds label 3"):
        make().fit(data[0], (test[0], yt))


@pytest.mark.parametrize("train, match", [
    ((np.array([["a"] * 12] * 4, dtype=object), np.zeros(4, dtype=np.int64)), "numeric"),
    ((np.full((4, 12), np.nan, dtype=np.float32), np.zeros(4, dtype=np.int64)), "nan at row 0, feature 0"),
])
def test_bad_feature_values_are_named(train, match):
    # Object arrays are the wrong type (TypeError), NaN features a bad value (ValueError).
    with pytest.raises(ParameterTypeError if match == "numeric" else ParameterError, match=match):
        make().fit(train)


def test_a_diverging_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_epoch(data, tmp_path):
    out = tmp_path / "run"
    make(epochs=1, out=out).fit(*data)
    calls = {"n": 0}

    def exploding(out_, y):  # the resumed run starts at epoch 2: its 3rd training batch
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out_, y)
        return loss * math_inf() if calls["n"] == 3 else loss

    t = make(epochs=3, out=out, resume=True, loss=exploding)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2 at step 3 of 5 \(optimizer step 8 of the run\).*"
                                                 r"smaller lr.*last good epoch \(1\)") as err:
        t.fit(*data)
    assert (err.value.epoch, err.value.step) == (2, 3)
    # The resume did epoch 1's evolution (skipped as the last epoch of the first run), then epoch 2 failed.
    ck = _checkpoint.load_checkpoint(out / "checkpoint.pt")
    assert ck["epoch"] == 1 and ck["evolved"] is True
    assert pd.read_csv(out / "metrics.csv").epoch.tolist() == [1]
    assert topo.History.load(out / "history.npz").epochs == [0.0, 1.0]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def math_inf():
    return float("inf")


def test_huge_lr_diverges_with_a_clear_error(data):
    with pytest.raises(NonFiniteLossError, match="lr=1e\\+30 is probably too large"):
        make(lr=1e30, epochs=3).fit(*data)


def test_strategy_objects():
    s = strategy_for()
    assert isinstance(s, LocalStrategy) and not isinstance(s, DataParallelStrategy)
    idx = torch.arange(10)
    assert s.shard(idx)[0] is idx and s.shard(idx)[1] == 1.0
    assert s.reduce([1.5, 2]) == [1.5, 2] and s.describe() == {"nproc": 1}
    assert s.evolve(None, lambda: "stepped", None, where="") == "stepped"
    assert s.agree(lambda a: a + 1, 1, what="x") == 2

    class Info:
        rank, world_size, backend = 1, 3, "gloo"

    d = DataParallelStrategy(Info())
    assert not d.is_main and d.describe() == {"nproc": 3, "dist_backend": "gloo"}
    mine, share = d.shard(torch.arange(7))
    assert mine.tolist() == [1, 4] and share == 2 / 7
    X = torch.arange(14.0).reshape(7, 2)
    assert d.eval_rows(X, torch.arange(7))[1].tolist() == [1, 4]


def test_the_evolver_follows_the_trainer_that_made_its_optimizer(data):
    first = make(epochs=1).fit(*data)
    ev = first.evolver
    assert ev.optimizer is first.optimizer_ and ev.trainer_optimizer is first.optimizer_
    # The user's optimizer, given to a trainer: attached, and marked as the user's.
    opt = torch.optim.SGD(first.model.parameters(), lr=0.05)
    second = topo.Trainer(first.model, optimizer=opt, evolver=ev, epochs=1, batch_size=32, progress=False)
    second.fit(*data)
    assert ev.optimizer is opt and ev.trainer_optimizer is None
    # ... which a later trainer with an optimizer of its own may not take over.
    with pytest.raises(ParameterError, match="another optimizer"):
        topo.Trainer(first.model, evolver=ev, epochs=1, batch_size=32, progress=False).fit(*data)
