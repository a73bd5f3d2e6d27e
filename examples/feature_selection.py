"""QuickSelection vs random features vs mutual information vs a supervised SET-MLP's input strength.

The comparison of Atashgahi et al. (QuickSelection, Machine Learning 2022): select ``k`` input features
on the training split, train an ``ExtraTreesClassifier(50 trees)`` on them, report its test accuracy and
the selector's fit time. The selectors:

* ``quickselection`` — :class:`topo.feature_selection.QuickSelection` (a SET-trained sparse denoising
  autoencoder; the strength Σ|w| of each input neuron), unsupervised;
* ``set_mlp_strength`` — the input strength of a supervised SET-MLP (SET's recipe, ``topo.Trainer``),
  read with :func:`analysis.importance.input_importance`;
* ``mutual_info`` — ``SelectKBest(mutual_info_classif)`` (on at most ``--mi-rows`` training rows: it is
  quadratic in time on the full sets);
* ``random`` — ``k`` features drawn at random (seeded).

Inputs are z-scored with the training split's statistics. The datasets' own train/test splits are used
(COIL20 has none: topo's seeded 80/20 split). Results go to ``OUT/results.csv`` and ``OUT/results.md``.

    python examples/feature_selection.py --datasets mnist,fashion-mnist,coil20 --k 50 --qs-epochs 10
    python examples/feature_selection.py --smoke      # digits, k = 10, tiny models, seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import topo
from analysis.importance import input_importance
from topo.feature_selection import QuickSelection
from topo.utils.atomic import atomic_write

SELECTORS = ("quickselection", "set_mlp_strength", "mutual_info", "random")


def load(name: str):
    X, y = topo.datasets.load(name, "train")
    T, t = topo.datasets.load(name, "test")
    X, T = topo.datasets.standardize(X, T)
    return (np.asarray(X, np.float32), np.asarray(y)), (np.asarray(T, np.float32), np.asarray(t))


def select(selector: str, X, y, k: int, seed: int, a) -> tuple[np.ndarray, float]:
    """The indices of ``k`` features chosen on ``(X, y)`` and the fit time in seconds."""
    t0 = time.perf_counter()
    if selector == "quickselection":
        qs = QuickSelection(n_features=k, n_hidden=a.qs_hidden, epsilon=13, epochs=a.qs_epochs, seed=seed,
                            standardize=False).fit(X)
        return qs.get_support(indices=True), qs.fit_seconds_
    if selector == "set_mlp_strength":
        sizes = [X.shape[1], *map(int, a.mlp_hidden.split(",")), int(y.max()) + 1]
        model = topo.compile(topo.erdos_renyi(sizes, epsilon=20, seed=seed), activation="allrelu", dropout=0.3,
                             init="kaiming_uniform_dense", regrow_init="kaiming_uniform_dense", seed=seed)
        ev = topo.Evolver(model, topo.rules.SET(0.3), seed=seed)
        topo.Trainer(model, evolver=ev, epochs=a.mlp_epochs, seed=seed, progress=False).fit((X, y))
        ranking = input_importance(model.topology(), by="strength")
        return ranking.feature.to_numpy()[:k], time.perf_counter() - t0
    if selector == "mutual_info":
        from sklearn.feature_selection import SelectKBest, mutual_info_classif

        rows = np.random.default_rng(seed).permutation(X.shape[0])[:a.mi_rows]
        sel = SelectKBest(lambda A, b: mutual_info_classif(A, b, random_state=seed), k=k).fit(X[rows], y[rows])
        return sel.get_support(indices=True), time.perf_counter() - t0
    if selector == "random":
        return np.random.default_rng(seed).choice(X.shape[1], size=k, replace=False), 0.0
    raise ValueError(f"unknown selector {selector!r}")


def accuracy(train, test, features: np.ndarray, seed: int) -> float:
    from sklearn.ensemble import ExtraTreesClassifier

    (X, y), (T, t) = train, test
    clf = ExtraTreesClassifier(n_estimators=50, random_state=seed, n_jobs=1).fit(X[:, features], y)
    return float(clf.score(T[:, features], t))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist,fashion-mnist,coil20")
    p.add_argument("--k", type=int, default=50, help="features to select (default 50)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--qs-epochs", type=int, default=10, help="QuickSelection epochs (the paper: 100)")
    p.add_argument("--qs-hidden", type=int, default=1000)
    p.add_argument("--mlp-epochs", type=int, default=5, help="epochs of the supervised SET-MLP")
    p.add_argument("--mlp-hidden", default="1000,1000,1000")
    p.add_argument("--mi-rows", type=int, default=10000, help="training rows for mutual information")
    p.add_argument("--selectors", default=",".join(SELECTORS))
    p.add_argument("--smoke", action="store_true", help="digits, k = 10, small models, 2 epochs")
    p.add_argument("--out", default="runs/examples/feature_selection")
    a = p.parse_args(argv)
    if a.smoke:
        a.datasets, a.k, a.qs_epochs, a.qs_hidden, a.mlp_epochs, a.mlp_hidden = "digits", 10, 2, 64, 2, "64"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in a.datasets.split(","):
        train, test = load(name)
        for seed in range(a.seeds):
            for selector in a.selectors.split(","):
                features, seconds = select(selector, *train, a.k, seed, a)
                features = np.sort(features)  # the classifier sees the columns in input order, for every selector
                acc = accuracy(train, test, features, seed)
                rows.append({"dataset": name, "seed": seed, "selector": selector, "k": a.k, "accuracy": acc,
                             "fit_seconds": round(seconds, 2), "features": " ".join(map(str, features))})
                print(f"{name} seed {seed} {selector}: accuracy {acc:.4f}, fit {seconds:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby(["dataset", "selector"], sort=False).agg(
        accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"), fit_seconds=("fit_seconds", "mean"),
        seeds=("seed", "count")).reset_index()
    md = ["| dataset | selector | accuracy | std | fit s | seeds |", "|---|---|---|---|---|---|"]
    md += [f"| {r.dataset} | {r.selector} | {r.accuracy:.4f} | {r.accuracy_std:.4f} | {r.fit_seconds:.1f} | "
           f"{r.seeds} |" for r in table.itertuples()]
    with atomic_write(out / "results.csv", "w") as f:
        df.to_csv(f, index=False)
    with atomic_write(out / "results.md", "w") as f:
        f.write("\n".join(md) + "\n")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
