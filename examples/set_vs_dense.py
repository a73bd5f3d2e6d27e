"""SET vs dense vs fixed sparse: the MLP comparison of Mocanu et al. (Nature Communications 2018).

784-1000-1000-1000-10 on Fashion-MNIST and MNIST, three models trained the same way
(SGD lr 0.01, momentum 0.9, weight decay 2e-4, dropout 0.3, batch 128):

* dense  — an ordinary torch MLP of nn.Linear layers;
* set    — an Erdős–Rényi topology (ε = 20) evolved by SET (ζ = 0.3) after every epoch but the last;
* static — the same Erdős–Rényi topology, never evolved (topo.rules.Static()).

Sparse weights start as SET's Keras code starts them (Glorot on the dense layer's fans, --init),
regrown ones at 0 (--regrow-init); inputs are z-scored with training statistics (--standardize).
Prints test accuracy (mean ± std over seeds), parameters and epoch times; writes a run directory per
(dataset, model, seed), summary.csv per dataset, a report of the seed-0 SET run; reruns reuse runs.
    python examples/set_vs_dense.py                          # the paper's protocol: 100 epochs, 3 seeds
    python examples/set_vs_dense.py --epochs 10 --seeds 2    # a shorter run
    python examples/set_vs_dense.py --smoke                  # seconds: digits, tiny layers (CI)
"""

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import topo
from topo import datasets
from topo.runs import RunDir

DROPOUT = 0.3  # after every hidden layer of all three models


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="SET vs dense vs static sparse MLPs",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default="fashion-mnist,mnist", help="comma-separated topo.datasets names")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ..., N-1)")
    p.add_argument("--models", default="dense,set,static")
    p.add_argument("--hidden", default="1000,1000,1000")
    p.add_argument("--epsilon", type=float, default=20.0, help="SET's ε (density of the sparse layers)")
    p.add_argument("--zeta", type=float, default=0.3, help="fraction of weights SET rewires per epoch")
    p.add_argument("--init", default="xavier_uniform_dense", help="sparse weights (topo.nn.init); SET's Keras init")
    p.add_argument("--regrow-init", default="zeros", help="regrown weights: zeros (SET's Keras code), normal:0.1, ...")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True, help="z-score features")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--bootstrap", type=int, default=250, help="report's scale-free bootstrap; 0: no report")
    p.add_argument("--out", default="runs/examples/set_vs_dense")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, 32-32 hidden, 2 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        (args.datasets, args.hidden, args.epsilon, args.epochs, args.seeds, args.bootstrap) = \
            ("digits", "32,32", 5.0, 2, 1, 10)
    return args


def build(kind: str, sizes: list, args, seed: int):
    """A fresh model and its evolver (None for the dense MLP)."""
    torch.manual_seed(seed)  # nn.Linear's own initialisation
    if kind == "dense":  # Linear → ReLU → Dropout per hidden layer, then Linear to the logits
        hidden = [m for a, b in zip(sizes, sizes[1:-1]) for m in (nn.Linear(a, b), nn.ReLU(), nn.Dropout(DROPOUT))]
        return nn.Sequential(*hidden, nn.Linear(sizes[-2], sizes[-1])), None
    # SET and static start from the same Erdős–Rényi topology and weights for a given seed.
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=args.epsilon, seed=seed), dropout=DROPOUT, seed=seed,
                         init=args.init, regrow_init=args.regrow_init)
    rule = topo.rules.SET(args.zeta) if kind == "set" else topo.rules.Static()
    return model, topo.Evolver(model, rule, seed=seed)


def resumable(run_dir: Path, config: dict) -> bool:
    """Continue a run only if it was started with the same settings (never mix two protocols in one run)."""
    saved = RunDir(run_dir).read_config() if (run_dir / RunDir.CHECKPOINT).exists() else {}
    changed = {k: (saved.get(k), v) for k, v in config.items() if saved and saved.get(k) != v}
    if changed:
        raise SystemExit(f"{run_dir} holds a run with other settings (saved, now): {changed}; choose another --out")
    return bool(saved)


def train(kind: str, dataset: str, sizes: list, data, args, seed: int, run_dir: Path) -> dict:
    model, evolver = build(kind, sizes, args, seed)
    config = {"dataset": dataset, "variant": kind, "example": "set_vs_dense", "dropout": DROPOUT,
              "epsilon": None if kind == "dense" else args.epsilon, "zeta": args.zeta if kind == "set" else None,
              "init": None if kind == "dense" else args.init, "standardize": args.standardize,
              "regrow_init": args.regrow_init if kind == "set" else None}
    trainer = topo.Trainer(model, optimizer="sgd", lr=args.lr, momentum=0.9, weight_decay=2e-4, evolver=evolver,
                           epochs=args.epochs, batch_size=args.batch_size, seed=seed, out_dir=run_dir,
                           resume=resumable(run_dir, config), progress=False, run_config=config)
    m = trainer.fit(*data).metrics_
    return {"dataset": dataset, "model": kind, "seed": seed, "epochs": int(m.epoch.iloc[-1]),
            "params": sum(p.numel() for p in model.parameters()), "weights": int(m.num_edges.iloc[-1]),
            "test_acc": float(m.test_acc.iloc[-1]), "best_acc": float(m.test_acc.max()),
            "epoch_s": float(m.train_seconds.mean()), "evolve_s": float(m.evolve_seconds.mean())}


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["dataset", "model"], sort=False)
    s = g.agg(seeds=("seed", "count"), epochs=("epochs", "first"), params=("params", "first"),
              acc_mean=("test_acc", "mean"), acc_std=("test_acc", "std"), best_mean=("best_acc", "mean"),
              epoch_s=("epoch_s", "mean"), evolve_s=("evolve_s", "mean")).reset_index()
    s["acc_std"] = s["acc_std"].fillna(0.0)  # one seed: no spread
    dense = s[s.model == "dense"].set_index("dataset")["params"]
    s["params_%dense"] = [100 * p / dense[d] if d in dense else float("nan") for d, p in zip(s.dataset, s.params)]
    s["test acc %"] = [f"{100 * m:.2f} ± {100 * sd:.2f}" for m, sd in zip(s.acc_mean, s.acc_std)]
    return s


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path.with_name(path.name + ".tmp"), index=False)
    os.replace(path.with_name(path.name + ".tmp"), path)  # never a half-written table


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start, out, rows = time.perf_counter(), Path(args.out), []
    hidden, models = [int(h) for h in args.hidden.split(",")], [m.strip() for m in args.models.split(",")]
    for name in [d.strip() for d in args.datasets.split(",")]:
        info = datasets.info(name)
        (X, y), (Xt, yt) = datasets.load(name, "train"), datasets.load(name, "test")
        X, Xt = datasets.standardize(X, Xt) if args.standardize else (X, Xt)
        data = (X, y), (Xt, yt)
        sizes = [info.n_features, *hidden, info.n_classes]
        for seed in range(args.seeds):
            for kind in models:
                run_dir = out / info.name / f"{kind}-seed{seed}"
                t0 = time.perf_counter()
                rows.append(train(kind, info.name, sizes, data, args, seed, run_dir))
                print(f"{info.name} {kind} seed {seed}: test acc {rows[-1]['test_acc']:.4f} "
                      f"({time.perf_counter() - t0:.0f} s) -> {run_dir}", flush=True)
        runs = pd.DataFrame([r for r in rows if r["dataset"] == info.name])
        write_csv(runs, out / info.name / "runs.csv")
        write_csv(summarize(runs), out / info.name / "summary.csv")
        if args.bootstrap > 0 and "set" in models:
            from analysis.report import build_report

            report = build_report(out / info.name / "set-seed0", bootstrap=args.bootstrap, seed=0)
            print(f"report of the seed-0 SET run: {report}", flush=True)

    summary = summarize(pd.DataFrame(rows))
    cols = ["dataset", "model", "seeds", "epochs", "test acc %", "params", "params_%dense", "epoch_s", "evolve_s"]
    print("\n" + summary[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nTargets: SET ≥ dense − 0.5 points with ≤ 5 % of the dense parameters, and SET > static")
    for d, grp in summary.groupby("dataset", sort=False):
        acc, pct = grp.set_index("model")["acc_mean"] * 100, grp.set_index("model")["params_%dense"]
        if "set" in acc and "dense" in acc:
            ok = acc["set"] >= acc["dense"] - 0.5 and pct["set"] <= 5
            print(f"  {d}: SET − dense = {acc['set'] - acc['dense']:+.2f} points at {pct['set']:.1f} % of the "
                  f"parameters -> {'met' if ok else 'missed'}")
        if "set" in acc and "static" in acc:
            print(f"  {d}: SET − static = {acc['set'] - acc['static']:+.2f} points -> "
                  f"{'met' if acc['set'] > acc['static'] else 'missed'}")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; run directories under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
