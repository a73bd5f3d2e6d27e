"""Which pixels matter? Input degree and strength of an evolved SET-MLP, and top-k feature selection.

SET prunes the weakest connections and regrows at random, so input neurons that carry information
keep and gain connections while border pixels lose theirs (Mocanu et al. 2018). The out-degree of an
input neuron and its strength s_i = Σ_j |W_ij| (QuickSelection, Atashgahi et al. 2022) rank the
features; the ranking is judged the QuickSelection way: ExtraTrees (50 trees) trained on the top-k
pixels only, against k random pixels and the k pixels of highest variance.

Prints the selection table and writes importance_maps.png (degree and strength at epoch 0 and at the
end), importance.csv and selection.csv under --out. Without --run it first trains a SET-MLP into
--out/run (with an HTML report); with --run it analyses an existing run directory, e.g. the seed-0
SET run of set_vs_dense.py.

    python examples/input_importance.py                                   # SET on MNIST, 100 epochs
    python examples/input_importance.py --run runs/examples/set_vs_dense/mnist/set-seed0
    python examples/input_importance.py --smoke                           # seconds (CI)
"""

import argparse
import os
import time
from pathlib import Path

import pandas as pd

import analysis
import topo
from topo import datasets
from topo.runs import RunDir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="input importance of an evolved SET-MLP",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", help="analyse this run directory (its history and config) instead of training")
    p.add_argument("--datasets", default="mnist", help="dataset to train on (one name)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1, help="the run's seed (number of seeds: the first is used)")
    p.add_argument("--hidden", default="1000,1000,1000")
    p.add_argument("--epsilon", type=float, default=20.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--k", type=int, default=50, help="features kept by each selection")
    p.add_argument("--repeats", type=int, default=5, help="seeds of the random selection and the trees")
    p.add_argument("--max-train", type=int, default=10000, help="training rows for ExtraTrees")
    p.add_argument("--bootstrap", type=int, default=250, help="report's scale-free bootstrap; 0 skips the report")
    p.add_argument("--out", default="runs/examples/input_importance")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, k = 10, 3 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.hidden, args.epsilon, args.epochs, args.lr = "digits", "64,64", 5.0, 3, 0.05
        args.k, args.repeats, args.max_train, args.bootstrap = 10, 1, 1000, 0
    return args


def train_set(args, run_dir: Path) -> Path:
    """A SET-MLP as set_vs_dense.py trains it (SET's Keras init and optimiser, z-scored inputs), with a report."""
    info = datasets.info(args.datasets)
    sizes = [info.n_features, *map(int, args.hidden.split(",")), info.n_classes]
    init = "xavier_uniform_dense"  # Glorot on the dense fans, regrowth at 0: SET's Keras code (topo.nn.init)
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=args.epsilon, seed=0), dropout=0.3, seed=0,
                         init=init, regrow_init="zeros")
    evolver = topo.Evolver(model, topo.rules.SET(0.3), seed=0)
    (X, y), (Xt, yt) = datasets.load(info.name, "train"), datasets.load(info.name, "test")
    X, Xt = datasets.standardize(X, Xt)
    topo.Trainer(model, lr=args.lr, momentum=0.9, weight_decay=2e-4, evolver=evolver,
                 epochs=args.epochs, batch_size=128, seed=0, out_dir=run_dir,
                 resume=(run_dir / RunDir.CHECKPOINT).exists(), progress=False,
                 run_config={"dataset": info.name, "example": "input_importance", "epsilon": args.epsilon, "zeta": 0.3,
                             "init": init, "standardize": True}).fit((X, y), (Xt, yt))
    if args.bootstrap > 0:
        from analysis.report import build_report

        print(f"report: {build_report(run_dir, bootstrap=args.bootstrap)}")
    return run_dir


def write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)  # never a half-written table


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run) if args.run else train_set(args, out / "run")
    run = RunDir(run_dir)  # reads are verified against the run's manifest
    history = run.read_history()
    name = run.read_config().get("dataset") or args.datasets  # the run's data
    end = history.epochs[-1]
    start_t, end_t = history.topology(0), history.final
    rankings = {f"{by}, epoch {e:g}": analysis.input_importance(t, by=by)
                for by in ("degree", "strength") for e, t in ((0, start_t), (end, end_t))}

    # Heat maps: one value per pixel, laid out as the input image.
    shape = datasets.info(name).image_shape
    if shape is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(8, 7.5))
        for ax, (label, ranking) in zip(axes.ravel(), rankings.items()):
            analysis.importance_map(ranking, shape, ax=ax, title=label)
        fig.suptitle(f"input neurons of layer 0 ({name}, {history.initial.sizes[0]} inputs)")
        fig.savefig(out / "importance_maps.png", dpi=100)
        print(f"heat maps: {out / 'importance_maps.png'}")
    table = pd.concat([r.set_index("feature")["score"].rename(label) for label, r in rankings.items()], axis=1)
    write_csv(table.sort_index().reset_index(), out / "importance.csv")

    degree = table[[f"degree, epoch {e:g}" for e in (0, end)]]
    print("\ninput-neuron degree (layer 0):")
    print(pd.DataFrame({"mean": degree.mean(), "std/mean": degree.std(ddof=0) / degree.mean(),
                        "max": degree.max(), "zero-degree pixels": (degree == 0).sum()}).to_string())

    # QuickSelection's test: ExtraTrees on the top-k features of each ranking vs random-k and variance-k.
    Xtr, ytr = datasets.load(name, "train")
    Xte, yte = datasets.load(name, "test")
    rows = []
    for r in range(args.repeats):
        for i, label in enumerate([f"strength, epoch {end:g}", f"degree, epoch {end:g}", "strength, epoch 0"]):
            res = analysis.evaluate_selection(Xtr, ytr, rankings[label], k=args.k, seed=r, X_test=Xte, y_test=yte,
                                              max_train=args.max_train, label=f"top-{args.k} by {label}")
            rows += res.iloc[: 1 if i else 3].assign(repeat=r).to_dict("records")
    sel = pd.DataFrame(rows)
    write_csv(sel, out / "selection.csv")
    s = sel.groupby("method", sort=False)["accuracy"].agg(["mean", "std", "count"]).fillna(0.0) * [100, 100, 1]
    s["count"] = s["count"].astype(int)
    print(f"\nExtraTrees test accuracy (%) on {args.k} selected features of {name} "
          f"({int(sel.n_train.iloc[0])} training rows, {int(sel.n_test.iloc[0])} test rows):")
    print(s.rename(columns={"count": "repeats"}).to_string(float_format=lambda v: f"{v:.2f}"))
    gain = s["mean"].iloc[0] - s.loc["random", "mean"]
    print(f"\nTarget: top-{args.k} by strength beats random-{args.k} by ≥ 10 points: {gain:+.2f} -> "
          f"{'met' if gain >= 10 else 'missed'}")
    print(f"wall time {time.perf_counter() - t_start:.0f} s; run {run_dir}; results under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
