"""Input importance: rankings against dense references, a real SET run on signal-plus-noise data, selection."""

import numpy as np
import pandas as pd
import pytest
import torch

import analysis
import topo
from _analysis_support import set_train, signal_data

INFORMATIVE = {0, 1, 2, 3}


@pytest.fixture(scope="module")
def trained():
    X, y = signal_data(n=2000, seed=0)
    return X, y, set_train(X, y, hidden=30, epochs=8, seed=0)


def test_ranking_matches_dense_reference():
    t = topo.erdos_renyi([12, 7, 3], epsilon=2, seed=4)
    t = t.with_weights([torch.randn(g.num_edges, generator=torch.Generator().manual_seed(k))
                        for k, g in enumerate(t.layers)])
    dense = t.layers[0].to_dense().double()  # (n_out, n_in)
    deg = analysis.input_importance(t, by="degree")
    st = analysis.input_importance(t, by="strength")
    ref_deg = (dense != 0).sum(0).numpy()
    ref_st = dense.abs().sum(0).numpy()
    assert deg.feature.tolist() == np.argsort(-ref_deg, kind="stable").tolist()
    np.testing.assert_allclose(st.set_index("feature").score.sort_index().to_numpy(), ref_st, rtol=1e-6)
    assert deg["rank"].tolist() == list(range(1, 13)) and deg.attrs["by"] == "degree"
    assert (np.diff(st.score.to_numpy()) <= 0).all()


def test_evolved_topology_ranks_the_informative_features_first(trained):
    X, y, h = trained
    by_strength = analysis.input_importance(h, by="strength")
    assert set(by_strength.feature[:4]) == INFORMATIVE
    by_degree = analysis.input_importance(h, by="degree")
    assert INFORMATIVE <= set(by_degree.feature[:5])
    scores = by_degree.set_index("feature").score
    informative = scores[list(INFORMATIVE)].mean()
    noise = scores.drop(list(INFORMATIVE)).mean()
    assert informative > 1.5 * noise
    # at epoch 0 (Erdős–Rényi) the degrees know nothing about the data
    start = analysis.input_importance(h, by="degree", epoch=0).set_index("feature").score
    assert start[list(INFORMATIVE)].mean() < 1.5 * start.drop(list(INFORMATIVE)).mean()


def test_selection_beats_random_and_variance(trained):
    X, y, h = trained
    Xte, yte = signal_data(n=1000, seed=1)
    ranking = analysis.input_importance(h, by="strength")
    res = analysis.evaluate_selection(X, y, ranking, k=4, X_test=Xte, y_test=yte, seed=0)
    assert res.method.tolist() == ["topo(strength)", "random", "variance"]
    acc = res.set_index("method").accuracy
    assert acc["topo(strength)"] > 0.85 and acc["topo(strength)"] > acc["random"] + 0.2
    assert acc["topo(strength)"] > acc["variance"] + 0.2
    assert res.features.iloc[0] == " ".join(map(str, ranking.feature[:4]))
    again = analysis.evaluate_selection(X, y, ranking, k=4, X_test=Xte, y_test=yte, seed=0)
    pd.testing.assert_frame_equal(res, again)
    only = analysis.evaluate_selection(X, y, list(range(30)), k=3, seed=1, baselines=False, max_train=500)
    assert only.method.tolist() == ["topo"] and only.n_train.iloc[0] == 500


def test_importance_map_layout_and_errors():
    scores = np.arange(12.0)
    assert analysis.importance_map(scores, shape=(3, 4))[2].tolist() == [8.0, 9.0, 10.0, 11.0]
    t = topo.erdos_renyi([16, 4], density=0.5, seed=0)
    img = analysis.importance_map(t, shape=(4, 4))
    assert img.ravel().tolist() == t.layers[0].out_degree().double().tolist()
    with pytest.raises(ValueError, match=r"holds 784 values but there are 16 input features"):
        analysis.importance_map(t, shape=(28, 28))
    with pytest.raises(ValueError, match="shape"):
        analysis.importance_map(t, shape=28)
    from matplotlib.figure import Figure
    ax = Figure().subplots()
    analysis.importance_map(t, shape=(4, 4), ax=ax, title="degree")
    assert ax.get_title() == "degree" and len(ax.images) == 1


def test_bad_input():
    t = topo.erdos_renyi([6, 3], density=0.5, seed=0)
    with pytest.raises(ValueError, match="weighted"):
        analysis.input_importance(t, by="strength")
    with pytest.raises(ValueError, match="by must be"):
        analysis.input_importance(t, by="gradient")
    X, y = signal_data(n=100, features=6)
    with pytest.raises(ValueError, match="k must be"):
        analysis.evaluate_selection(X, y, [0, 1], k=7)
    with pytest.raises(ValueError, match="feature 9"):
        analysis.evaluate_selection(X, y, [9, 1], k=1)
    with pytest.raises(ValueError, match="rows"):
        analysis.evaluate_selection(X, y[:50], [0, 1], k=1)
    with pytest.raises(ValueError, match="only 2 features"):
        analysis.evaluate_selection(X, y, [0, 1], k=3)
    with pytest.raises(ValueError, match="more than once"):
        analysis.evaluate_selection(X, y, [0, 0, 1], k=1)
