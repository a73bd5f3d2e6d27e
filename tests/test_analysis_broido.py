"""Broido–Clauset categories on hand-made inputs, their exclusion rule, and scale_free_report."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import analysis
import topo
from _analysis_support import synthetic_history
from analysis import Comparison, PowerLawFit, broido_clauset, broido_clauset_exclusion


def rows(*specs):
    """(p, n_tail, alpha, alternative favoured?) per sequence → the DataFrame scale_free_report writes."""
    return pd.DataFrame([{"p_value": p, "n_tail": n, "alpha": a,
                          "exponential_verdict": "alternative" if fav else "power_law",
                          "lognormal_verdict": "inconclusive"} for p, n, a, fav in specs])


GOOD = (0.5, 200, 2.5, False)      # passes everything
NOT_REJ_SMALL = (0.5, 20, 2.5, False)  # not rejected, tail too small
REJECTED = (0.01, 500, 2.5, False)  # rejected, no alternative favoured
REJ_ALT = (0.01, 500, 2.5, True)   # rejected and an alternative favoured
STEEP = (0.5, 200, 3.5, False)     # weak but α outside (2, 3)


@pytest.mark.parametrize("specs,category", [
    ([GOOD] * 10, "Strongest"),
    ([GOOD] * 9 + [STEEP], "Strong"),            # strong_alone 90 % but strong only 90 % < 95 %
    ([GOOD] * 5 + [REJ_ALT] * 5, "Strong"),      # exactly half: counts compare with n/2 inclusively
    ([GOOD] * 4 + [REJ_ALT] * 6, "Not scale-free"),
    ([STEEP] * 6 + [REJ_ALT] * 4, "Weak"),
    ([NOT_REJ_SMALL] * 6 + [REJECTED] * 4, "Weakest"),
    ([REJECTED] * 10, "Super-Weak"),
    ([(0.1, 200, 2.5, False)] * 4, "Super-Weak"),  # p must exceed 0.1 (SFAnalysis: ppl > 0.1)
    ([(0.5, 200, 2.0, False)] * 4, "Weak"),        # 2 < α < 3 is strict
    ([(0.5, 50, 2.9, False)] * 4, "Strongest"),    # n_tail ≥ 50 is inclusive
])
def test_categories_on_hand_made_sets(specs, category):
    assert broido_clauset(rows(*specs)).category == category


def test_holds_and_fractions():
    bc = broido_clauset(rows(GOOD, GOOD, REJ_ALT, NOT_REJ_SMALL))
    assert bc.n_sequences == 4
    assert bc.fractions["not_rejected"] == 0.75 and bc.fractions["no_alternative_favoured"] == 0.75
    assert bc.fractions["not_rejected_tail50"] == 0.5 and bc.fractions["strong"] == 0.5
    assert bc.holds == {"Strongest": False, "Strong": True, "Weak": True, "Weakest": True, "Super-Weak": True}
    assert broido_clauset([]).category == "n/a"


def test_fit_objects_and_missing_p_values():
    def fit(p, fav):
        v = "alternative" if fav else "inconclusive"
        return PowerLawFit(alpha=2.5, xmin=3, n_tail=100, ks_distance=0.02, p_value=p,
                           comparisons={"lognormal": Comparison(-1.0, 0.5, v)}, x_max=400)
    assert broido_clauset([fit(0.4, False), fit(0.3, False)]).category == "Strongest"
    bc = broido_clauset([fit(math.nan, False), fit(math.nan, False)])
    assert bc.category == "Super-Weak" and bc.notes
    with pytest.raises(ValueError, match="PowerLawFit"):
        broido_clauset([1, 2])


@pytest.mark.parametrize("seq,reason", [
    ([1, 1, 2, 1, 3, 1], "too sparse"), ([0, 1, 1, 1], "too sparse"),
    ([40] * 100 + [42] * 100, "too dense"), ([5] * 100, "single distinct"), ([2, 3, 4, 2, 3, 5, 2, 2, 9, 7] * 10, "")])
def test_exclusion_rule(seq, reason):
    got = broido_clauset_exclusion(seq)
    assert (got == "") if reason == "" else reason in got


def test_scale_free_report_on_a_history():
    h = synthetic_history(sizes=(60, 50, 8), epsilon=3, epochs=3, seed=1)
    calls = []
    table = analysis.scale_free_report(h, epochs=["last"], bootstrap=10, progress=calls.append)
    assert sorted(table.epoch.unique()) == [0.0, 3.0]  # epoch 0 always joins
    assert len(table) == 2 * 2 * 2 and len(calls) == 8
    for col in ["alpha", "xmin", "n_tail", "ks_distance", "p_value", "exponential_R", "exponential_p",
                "truncated_power_law_verdict", "plausible", "verdict", "bc_exclusion", "bc_category",
                "bc_category_kept", "span", "error"]:
        assert col in table, col
    for _epoch, grp in table.groupby("epoch"):
        assert grp.bc_category.nunique() == 1
        fitted = grp[grp.error == ""]
        assert grp.bc_category.iloc[0] == broido_clauset(fitted).category
    # mean degree and n are those of the degree sequences themselves
    g = h.final.layers[0]
    row = table[(table.epoch == 3) & (table.layer == 0) & (table.side == "out")].iloc[0]
    assert row.n == g.n_in and row.mean_degree == pytest.approx(g.num_edges / g.n_in)
    assert not table.scale_free.any()  # random rewiring of an ER graph is not scale-free


def test_unfittable_sequences_become_error_rows():
    dense_out = topo.from_dense_masks([torch.ones(3, 6, dtype=torch.bool)])  # every in-degree is 6
    table = analysis.scale_free_report(dense_out, bootstrap=5)
    row = table[table.side == "in"].iloc[0]
    assert "two distinct" in row.error and row.verdict.startswith("not tested") and not row.plausible
    assert "too dense" in row.bc_exclusion
    with pytest.raises(ValueError, match="sides"):
        analysis.scale_free_report(dense_out, sides=("up",))


def test_dict_input_keeps_its_epochs():
    t = topo.erdos_renyi([40, 30], epsilon=4, seed=0)
    table = analysis.scale_free_report({2: t, 7: t}, bootstrap=5)
    assert sorted(table.epoch.unique()) == [2.0, 7.0]
    np.testing.assert_array_equal(table[table.epoch == 2].alpha.to_numpy(), table[table.epoch == 7].alpha.to_numpy())
