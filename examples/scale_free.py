"""Does SET make a network scale-free? The degree table of a SET run, epoch 0 vs the end, tested properly.

Mocanu et al. (2018) report that SET turns the Erdős–Rényi start into a scale-free-like topology.
This example measures it, per layer and side ('out': out-degree of the layer's input neurons, 'in':
in-degree of its output neurons), at epoch 0 (the ER start) and at the last epoch:

* heterogeneity: std/mean of the degrees and the maximum degree;
* Clauset–Shalizi–Newman (2009): discrete power-law fit above xmin, bootstrap p-value (p ≤ 0.1
  rejects), likelihood-ratio tests against exponential, log-normal, stretched exponential and
  truncated power law; 'plausible' needs p > 0.1, n_tail ≥ 50 and no alternative favoured, and
  'scale_free' also a tail spanning a decade (an ER tail is often a steep "power law" over 1.3x);
* Broido & Clauset (2019) categories per epoch, and which sequences their pipeline would drop as
  too dense (mean degree > √n) — SET layers at ε = 20 often are.

Without --run it first trains a SET-MLP into --out/run (with an HTML report); with --run it reads an
existing run, e.g. the seed-0 SET run of set_vs_dense.py.

    python examples/scale_free.py                                               # SET, Fashion-MNIST, 100 epochs
    python examples/scale_free.py --run runs/examples/set_vs_dense/fashion-mnist/set-seed0
    python examples/scale_free.py --smoke                                       # seconds (CI)
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
    p = argparse.ArgumentParser(description="scale-free tests of a SET run",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", help="analyse this run directory (its history) instead of training")
    p.add_argument("--datasets", default="fashion-mnist", help="dataset to train on (one name)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1, help="the run's seed (number of seeds: the first is used)")
    p.add_argument("--hidden", default="1000,1000,1000")
    p.add_argument("--epsilon", type=float, default=20.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per degree sequence")
    p.add_argument("--out", default="runs/examples/scale_free")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, 3 epochs, 20 resamples")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.hidden, args.epsilon, args.epochs, args.lr, args.bootstrap = \
            "digits", "100,100", 10.0, 3, 0.05, 20
    return args


def train_set(args, run_dir: Path) -> Path:
    info = datasets.info(args.datasets)
    sizes = [info.n_features, *map(int, args.hidden.split(",")), info.n_classes]
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=args.epsilon, seed=0), dropout=0.3, seed=0,
                         regrow_init="zeros")  # regrown weights start at 0, as in SET's Keras code
    topo.Trainer(model, lr=args.lr, momentum=0.9, weight_decay=2e-4, evolver=topo.Evolver(model, topo.rules.SET(0.3)),
                 epochs=args.epochs, batch_size=128, seed=0, out_dir=run_dir, progress=False,
                 resume=(run_dir / RunDir.CHECKPOINT).exists(),
                 run_config={"dataset": info.name, "example": "scale_free", "epsilon": args.epsilon, "zeta": 0.3}
                 ).fit(datasets.load(info.name, "train"), datasets.load(info.name, "test"))
    from analysis.report import build_report

    print(f"report: {build_report(run_dir, bootstrap=min(args.bootstrap, 250))}")
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
    history = RunDir(run_dir).read_history()  # verified against the run's manifest
    end = history.epochs[-1]

    summary = analysis.degree_summary(analysis.degrees(history, epochs=[0, end]))
    summary["std/mean"] = summary["std"] / summary["mean"]
    sf = analysis.scale_free_report(history, epochs=[0, end], bootstrap=args.bootstrap, seed=0)
    table = summary.merge(sf.drop(columns=["n", "zeros", "mean_degree"]), on=["epoch", "layer", "side"])
    write_csv(table, out / "scale_free.csv")
    alts = [c[:-8] for c in table.columns if c.endswith("_verdict")]
    table["favoured"] = [", ".join(a for a in alts if row[f"{a}_verdict"] == "alternative") or "-"
                         for _, row in table.iterrows()]
    cols = ["epoch", "layer", "side", "n", "mean", "std/mean", "max", "zeros", "alpha", "xmin", "n_tail", "span",
            "p_value", "favoured", "plausible", "scale_free", "bc_exclusion"]
    print(f"degree sequences of {run_dir} (sizes {list(history.initial.sizes)}), epoch 0 vs {end:g}, "
          f"{args.bootstrap} bootstrap resamples:")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    print("\nWhat the tests conclude:")
    for epoch, grp in table.groupby("epoch"):
        fitted = grp[grp["error"] == ""]
        print(f"  epoch {epoch:g}{' (Erdős–Rényi start)' if epoch == 0 else ''}: "
              f"{int(fitted.plausible.sum())} of {len(grp)} sequences plausible power laws (CSN), "
              f"{int(fitted.scale_free.sum())} of them over at least a decade; "
              f"{int((fitted.p_value > 0.1).sum())} not rejected by the bootstrap, "
              f"{int((fitted.favoured != '-').sum())} with an alternative favoured, "
              f"{len(grp) - len(fitted)} not testable (e.g. a dense layer); Broido–Clauset: "
              f"{grp.bc_category.iloc[0]} (over the sequences their pipeline keeps: {grp.bc_category_kept.iloc[0]}; "
              f"{int((grp.bc_exclusion != '').sum())} dropped as too dense/sparse)")

    # Heterogeneity: does evolution spread the degrees beyond the binomial spread of the ER start?
    wide = summary.pivot_table(index=["layer", "side"], columns="epoch", values=["std/mean", "max"])
    evolving = wide[wide[("std/mean", 0.0)] > 0]  # a dense layer has one degree and never evolves
    ratio = evolving[("std/mean", end)] / evolving[("std/mean", 0.0)]
    rises = int(((ratio >= 1.5) & (evolving[("max", end)] > evolving[("max", 0.0)])).sum())
    print(f"\nHeterogeneity (std/mean at epoch {end:g} over epoch 0): "
          + ", ".join(f"layer {k} {s} x{r:.2f}" for (k, s), r in ratio.items()))
    print(f"Target: std/mean ≥ 1.5x epoch 0 with a larger max degree in {rises} of {len(ratio)} evolving "
          f"sequences -> {'met' if rises > len(ratio) / 2 else 'missed'}")
    print(f"wall time {time.perf_counter() - t_start:.0f} s; table {out / 'scale_free.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
