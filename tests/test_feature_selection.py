"""QuickSelection: scikit-learn's estimator checks, the strength score, pipelines, selection quality."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import topo
from topo.feature_selection import QuickSelection
from topo.nn import SparseDAE


def _small(**kw):
    return QuickSelection(**{"n_features": 2, "n_hidden": 8, "epsilon": 2, "epochs": 2, "batch_size": 20,
                             "seed": 0, **kw})


@parametrize_with_checks([_small()])
def test_sklearn_estimator_checks(estimator, check):
    # Every check runs; scikit-learn itself skips check_array_api_input unless SCIPY_ARRAY_API=1.
    check(estimator)


def test_scores_are_input_strengths_and_support_is_top_k():
    X = np.random.default_rng(0).normal(size=(120, 15))
    qs = _small(n_features=4, n_hidden=12, epochs=3).fit(X)
    W = qs.model_.encoder.to_dense().double()          # (hidden, inputs)
    np.testing.assert_allclose(qs.scores_, W.abs().sum(0).numpy(), rtol=1e-6)
    top = np.argsort(-qs.scores_, kind="stable")[:4]
    assert set(qs.get_support(indices=True)) == set(top)
    np.testing.assert_array_equal(qs.transform(X), X[:, np.sort(top)])
    assert len(qs.loss_curve_) == 3 and qs.history_.epochs == [0.0, 1.0, 2.0]


def test_seeded_and_leaves_the_global_rng_alone():
    X = np.random.default_rng(1).normal(size=(80, 10))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = _small().fit(X).scores_
    assert torch.equal(torch.get_rng_state(), before)
    b = _small().fit(X).scores_
    c = _small(seed=1).fit(X).scores_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pipeline_with_dataframe_keeps_feature_names():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 6)), columns=[f"f{i}" for i in range(6)])
    y = (X["f0"] > 0).astype(int)
    pipe = Pipeline([("select", _small(n_features=3)), ("trees", ExtraTreesClassifier(10, random_state=0))])
    pipe.fit(X, y)
    names = pipe.named_steps["select"].get_feature_names_out()
    assert len(names) == 3 and set(names) <= set(X.columns)
    assert pipe.predict(X).shape == (100,)


def test_selection_beats_random_features_on_digits():
    """QuickSelection's top-10 digit pixels classify better than random 10-pixel subsets."""
    X, y = topo.datasets.load("digits", "train")
    Xt, yt = topo.datasets.load("digits", "test")
    X, Xt = np.asarray(X, dtype=np.float64), np.asarray(Xt, dtype=np.float64)
    qs = QuickSelection(n_features=10, n_hidden=200, epsilon=5, epochs=10, batch_size=50, lr=0.05, seed=0).fit(X)
    assert qs.loss_curve_[-1] < qs.loss_curve_[0]

    def acc(cols):
        return ExtraTreesClassifier(50, random_state=0).fit(X[:, cols], y).score(Xt[:, cols], yt)

    rng = np.random.default_rng(0)
    random_acc = np.mean([acc(rng.choice(64, 10, replace=False)) for _ in range(5)])
    assert acc(qs.get_support(indices=True)) > random_acc + 0.03


def test_bad_parameters_and_too_many_features():
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match="n_features"):
        _small(n_features=0).fit(X)
    with pytest.raises(ValueError, match="zeta"):
        _small(zeta=1.5).fit(X)
    with pytest.warns(UserWarning, match="all are kept"):
        assert _small(n_features=9).fit(X).transform(X).shape == (30, 4)


def test_sparse_dae_evolves_both_layers():
    dae = SparseDAE(30, 40, epsilon=3, seed=0)
    opt = torch.optim.SGD(dae.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(64, 30)
    torch.nn.functional.mse_loss(dae(x), x).backward()
    opt.step()
    ev = topo.Evolver(dae, topo.rules.SET(0.2), optimizer=opt, seed=0)
    rows = ev.step(epoch=1)
    assert [r["births"] for r in rows] == [round(0.2 * dae.encoder.num_edges), round(0.2 * dae.decoder.num_edges)]
    dae.eval()
    torch.testing.assert_close(dae(x), dae.decoder(torch.sigmoid(dae.encoder(x))))
    with pytest.raises(topo.ParameterError, match="dropout"):
        SparseDAE(5, 5, dropout=1.0)
