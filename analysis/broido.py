"""Broido & Clauset (2019) scale-free categories over a set of degree sequences, and the per-layer report.

Broido & Clauset ("Scale-free networks are rare", Nat. Commun. 10, 1017)
judge a network by the share of its degree sequences (here: every layer and
side of one epoch) that pass each test. Their code (``SFAnalysis``) counts a
sequence as

* *not rejected* when the bootstrap gives ``p > 0.1``;
* *no alternative favoured* when no likelihood-ratio test significantly
  prefers an alternative (a failed fit does not count as favoured);

and a network as

=============  =====================================================================
Super-Weak     ≥ 50 % of sequences: no alternative favoured
Weakest        ≥ 50 %: not rejected
Weak           ≥ 50 %: not rejected and ``n_tail ≥ 50``
Strong         ≥ 50 %: not rejected, ``n_tail ≥ 50``, ``2 < α < 3`` and no alternative favoured
Strongest      ≥ 90 %: not rejected, ``n_tail ≥ 50``, ``2 < α < 3``; and ≥ 95 % all of that plus
               no alternative favoured
=============  =====================================================================

Their pipeline drops a sequence before testing when its mean degree is below
2 (too sparse) or above ``√n`` (too dense, ``n`` = number of nodes), or when
it has a single distinct value. Sparse-network layers at SET's usual density
are often *too dense* by that rule; :func:`scale_free_report` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import topo

from ._inputs import iter_topologies, resolve_epochs
from .powerlaw_fit import ALTERNATIVES, PowerLawFit, as_degree_sequence, scale_free

__all__ = ["BroidoClauset", "broido_clauset", "broido_clauset_exclusion", "scale_free_report", "CATEGORIES"]

#: Strongest first; "Not scale-free" when none holds.
CATEGORIES = ("Strongest", "Strong", "Weak", "Weakest", "Super-Weak")


@dataclass
class BroidoClauset:
    """Broido–Clauset evidence for one set of degree sequences.

    ``category`` is the strongest category that holds (or ``"Not scale-free"``;
    ``"n/a"`` for an empty set); ``holds`` maps every category to a bool;
    ``fractions`` gives the share of sequences passing each per-sequence test.
    """

    category: str
    holds: dict[str, bool]
    fractions: dict[str, float]
    n_sequences: int
    notes: list[str] = field(default_factory=list)


def _records(fits) -> list[tuple[float, int, float, bool]]:
    out = []
    if isinstance(fits, pd.DataFrame):
        verdict_cols = [c for c in fits.columns if c.endswith("_verdict")]
        for _, row in fits.iterrows():
            out.append((float(row["p_value"]), int(row["n_tail"]), float(row["alpha"]),
                        not any(row[c] == "alternative" for c in verdict_cols)))
        return out
    for f in fits:
        if not isinstance(f, PowerLawFit):
            raise ValueError(f"broido_clauset expects PowerLawFit objects or a DataFrame, got {type(f).__name__}")
        out.append((f.p_value, f.n_tail, f.alpha, not f.favoured_alternatives))
    return out


def broido_clauset(fits) -> BroidoClauset:
    """Categorise a set of fitted degree sequences (Broido & Clauset 2019, definitions above).

    Parameters
    ----------
    fits : iterable of PowerLawFit, or DataFrame
        A DataFrame needs columns ``p_value``, ``n_tail``, ``alpha`` and any
        number of ``<alternative>_verdict`` columns (as :func:`scale_free_report` writes).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"p_value": [0.5, 0.3, 0.01], "n_tail": [80, 60, 500],
    ...                      "alpha": [2.5, 2.2, 3.5], "lognormal_verdict": ["inconclusive"] * 3})
    >>> broido_clauset(rows).category
    'Strong'
    """
    recs = _records(fits)
    n = len(recs)
    if n == 0:
        return BroidoClauset("n/a", {c: False for c in CATEGORIES}, {}, 0, ["no sequences"])
    p = np.array([r[0] for r in recs], dtype=np.float64)
    ntail = np.array([r[1] for r in recs])
    alpha = np.array([r[2] for r in recs], dtype=np.float64)
    no_alt = np.array([r[3] for r in recs])
    not_rejected = p > 0.1  # nan (no bootstrap) is not "not rejected"
    weak = not_rejected & (ntail >= 50)
    strong_alone = weak & (alpha > 2) & (alpha < 3)
    strong = strong_alone & no_alt
    fr = {"no_alternative_favoured": no_alt.mean(), "not_rejected": not_rejected.mean(),
          "not_rejected_tail50": weak.mean(), "strong_without_lr": strong_alone.mean(), "strong": strong.mean()}
    # counts compared with n/2, 9n/10, 95n/100 as in SFAnalysis
    c = {k: v * n for k, v in fr.items()}
    holds = {
        "Super-Weak": c["no_alternative_favoured"] >= n / 2,
        "Weakest": c["not_rejected"] >= n / 2,
        "Weak": c["not_rejected_tail50"] >= n / 2,
        "Strong": c["strong"] >= n / 2,
        "Strongest": c["strong_without_lr"] >= 9 * n / 10 and c["strong"] >= 95 * n / 100,
    }
    category = next((k for k in CATEGORIES if holds[k]), "Not scale-free")
    notes = ["p-values missing (bootstrap=0): no sequence counts as not rejected"] if np.isnan(p).any() else []
    return BroidoClauset(category, holds, {k: float(v) for k, v in fr.items()}, n, notes)


def broido_clauset_exclusion(degree_sequence) -> str:
    """Why Broido & Clauset's pipeline would drop this sequence, or ``""`` when it keeps it.

    Mean degree (zeros included) below 2 or above ``√n``, or a single distinct value.

    >>> broido_clauset_exclusion([40] * 100 + [41] * 100)
    'too dense (mean degree 40.5 > √n = 14.1)'
    """
    x = as_degree_sequence(degree_sequence)
    mean, root = float(x.mean()), math.sqrt(x.size)
    if mean > root:
        return f"too dense (mean degree {mean:.3g} > √n = {root:.3g})"
    if mean < 2:
        return f"too sparse (mean degree {mean:.3g} < 2)"
    if np.unique(x).size == 1:
        return "a single distinct value"
    return ""


def scale_free_report(obj, epochs=None, *, bootstrap: int = 1000, seed: int = 0,
                      sides=("out", "in"), progress=None) -> pd.DataFrame:
    """Scale-free tests for every layer and side at the chosen epochs, with Broido–Clauset categories.

    Parameters
    ----------
    obj : topo.History, topo.Topology or dict {epoch: Topology}
        For a History epoch 0 (the Erdős–Rényi start) is always included, as
        the reference any claim about the evolved epochs needs.
    epochs : sequence, optional
        Epochs of a History (numbers, ``-1``, ``"last"``, ``"mid"``; default
        ``(0, "last")``) or keys of a dict (default all).
    bootstrap, seed : int
        Passed to :func:`scale_free` (sequence ``i`` uses ``seed + i``).
    sides : sequence of {"out", "in"}
        Which degree sequences of each layer (see :mod:`analysis.degrees`).
    progress : bool or callable, optional
        ``True`` for a tqdm bar (auto-disabled off a terminal); a callable is
        called with a short label after each sequence.

    Returns
    -------
    pandas.DataFrame
        One row per epoch, layer and side: size, zeros, mean degree, the fit
        (``alpha``, ``xmin``, ``n_tail``, ``ks_distance``, ``p_value``, the
        ``<alternative>_R/_p/_verdict`` columns), ``plausible``, ``scale_free``, ``verdict``,
        ``bc_exclusion`` (why Broido–Clauset would drop it, else ``""``),
        ``bc_category`` (over all sequences of that epoch) and
        ``bc_category_kept`` (over those their pipeline keeps), and ``error``
        when a sequence cannot be fitted (e.g. a dense layer: one distinct value).
    """
    from ._progress import progress_bar

    sides = tuple(sides)
    for s in sides:
        if s not in ("out", "in"):
            raise ValueError(f"sides must be 'out' and/or 'in', got {s!r}")
    if isinstance(obj, topo.History):
        epochs = sorted(set(resolve_epochs(obj, (0, "last") if epochs is None else epochs)) | {0.0})
    elif isinstance(obj, topo.Topology):
        epochs = None
    seqs = []
    for epoch, t in iter_topologies(obj, epochs):
        for k, g in enumerate(t.layers):
            for side in sides:
                deg = (g.out_degree() if side == "out" else g.in_degree()).cpu().numpy()
                seqs.append((epoch, k, side, deg))
    rows = []
    with progress_bar(progress, total=len(seqs), desc="scale-free tests") as tick:
        for i, (epoch, k, side, deg) in enumerate(seqs):
            row = {"epoch": epoch, "layer": k, "side": side, "n": deg.size, "zeros": int((deg == 0).sum()),
                   "mean_degree": float(deg.mean()), "bc_exclusion": broido_clauset_exclusion(deg), "error": ""}
            try:
                row.update(scale_free(deg, bootstrap=bootstrap, seed=seed + i).to_dict())
            except ValueError as err:
                row.update({"plausible": False, "scale_free": False, "verdict": f"not tested: {err}",
                            "error": str(err)})
            rows.append(row)
            tick(f"epoch {epoch:g} layer {k} {side}")
    table = pd.DataFrame(rows)
    for col in ["alpha", "xmin", "n_tail", "ks_distance", "p_value"] + [f"{a}_verdict" for a in ALTERNATIVES]:
        if col not in table:
            table[col] = np.nan
    table["bc_category"] = ""
    table["bc_category_kept"] = ""
    for _epoch, grp in table.groupby("epoch", dropna=False, sort=False):
        fitted = grp[grp["error"] == ""]
        kept = fitted[fitted["bc_exclusion"] == ""]
        idx = grp.index
        table.loc[idx, "bc_category"] = broido_clauset(fitted).category
        table.loc[idx, "bc_category_kept"] = broido_clauset(kept).category
    return table
