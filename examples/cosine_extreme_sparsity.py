"""Cosine-similarity rules at extreme sparsity (ε = 1, density ≈ 0.2 %): CTRE and the 2019 variants vs SET and RigL.

At ε = 1 a 1000-1000 layer keeps 2000 of its 10⁶ possible edges, so *where* new edges grow matters
most. CTRE (Atashgahi et al., Machine Learning 2022) grows the free positions whose endpoints'
activations have the highest |cos|; Pieterse & Mocanu (2019) also prune by low |cos|. Each rule in
RULES below is one line of topo.rules; all rewire ζ = 0.2 (CTRE's value) after every epoch but the last
(RigL too: same cadence, no ζ decay). 'static' keeps the Erdős–Rényi start as the baseline. No dropout (as
CTRE's code): with 1–2 inputs per neuron, dropout 0.3 costs every rule ≈ 5 points (docs/results.md).

10 % of the training split is held out for validation (CTRE-seq watches it); test accuracy is measured once,
after the last epoch. Fashion-MNIST and COIL20 (../shared/data/COIL20.mat, read by the .mat loader).
    python examples/cosine_extreme_sparsity.py                                  # 100 epochs, 3 seeds
    python examples/cosine_extreme_sparsity.py --datasets coil20 --epochs 50 --batch-size 32 --mode approx
    python examples/cosine_extreme_sparsity.py --smoke                          # seconds (CI)
"""

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

import topo
from topo import datasets
from topo.rules import CosineGrow, CosinePrune, MagnitudePrune, RandomGrow, Rule
from topo.runs import RunDir

RULES = {
    "set": lambda a: topo.rules.SET(a.zeta),  # per-sign magnitude prune + random growth
    # magnitude prune + cosine growth; a re-selected pruned edge is replaced by a random one
    "ctre-sim": lambda a: topo.rules.CTRE(a.zeta, variant="sim", mode=a.mode),
    # magnitude prune + cosine growth until validation accuracy stalls for `patience` epochs, then random
    "ctre-seq": lambda a: topo.rules.CTRE(a.zeta, variant="seq", patience=a.patience, mode=a.mode),
    "rigl": lambda a: topo.rules.RigL(a.zeta, mode=a.mode),  # global |w| prune + gradient growth
    "cosine+random": lambda a: Rule(CosinePrune(a.zeta), RandomGrow()),  # the 2019 combinations
    "magnitude+cosine": lambda a: Rule(MagnitudePrune(a.zeta), CosineGrow(a.mode)),
    "cosine+cosine": lambda a: Rule(CosinePrune(a.zeta), CosineGrow(a.mode)),
    "static": lambda a: topo.rules.Static(),
}
COSINE_RULES = ("ctre-sim", "ctre-seq", "cosine+random", "magnitude+cosine", "cosine+cosine")
CONFIG_KEYS = ("epsilon", "zeta", "mode", "patience", "samples", "init", "dropout", "regrow_init", "standardize")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="cosine rules vs SET and RigL at ε = 1",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default="fashion-mnist,coil20", help="comma-separated topo.datasets names")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ..., N-1)")
    p.add_argument("--rules", default=",".join(RULES), help=f"comma-separated, from {', '.join(RULES)}")
    p.add_argument("--hidden", default="1000,1000,1000")
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--zeta", type=float, default=0.2)
    p.add_argument("--mode", choices=("exact", "approx", "approx-uniform"), default="exact",
                   help="cosine/gradient ranking of all free positions, or of a sampled pool (topo.rules.CosineGrow)")
    p.add_argument("--patience", type=int, default=10, help="CTRE-seq: stalled epochs before random growth")
    p.add_argument("--samples", type=int, default=4096, help="samples behind the cosine/gradient scores")
    p.add_argument("--init", default="kaiming_uniform", help="initial weights (topo.nn.init), e.g. normal:0.1")
    p.add_argument("--dropout", type=float, default=0.0, help="after every hidden layer (CTRE's code: none)")
    p.add_argument("--regrow-init", default="zeros", help="regrown weights: zeros (SET's Keras code), kaiming_uniform")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True, help="z-score features")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--bootstrap", type=int, default=250, help="report's scale-free bootstrap; 0 skips the report")
    p.add_argument("--out", default="runs/examples/cosine_extreme_sparsity")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, 64-64 hidden, 2 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.hidden, args.epochs, args.seeds, args.bootstrap, args.samples = \
            "digits", "64,64", 2, 1, 10, 256
    unknown = set(args.rules.split(",")) - set(RULES)
    if unknown:
        p.error(f"unknown rules {sorted(unknown)}; choose from {', '.join(RULES)}")
    return args


def train(rule_name: str, dataset: str, sizes: list, data, args, seed: int, run_dir: Path) -> dict:
    train_xy, val_xy, test_xy = data
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=args.epsilon, seed=seed), dropout=args.dropout, seed=seed,
                         init=args.init, regrow_init=args.regrow_init)
    evolver = topo.Evolver(model, RULES[rule_name](args), seed=seed, max_samples=args.samples)
    config = {"dataset": dataset, "rule": rule_name, "example": "cosine_extreme_sparsity",
              **{k: vars(args)[k] for k in CONFIG_KEYS}}
    saved = RunDir(run_dir).read_config() if (run_dir / RunDir.CHECKPOINT).exists() else {}
    if saved and any(saved.get(k) != v for k, v in config.items()):  # never mix two protocols in one run
        raise SystemExit(f"{run_dir} holds a run with other settings; choose another --out")
    trainer = topo.Trainer(model, optimizer="sgd", lr=args.lr, momentum=0.9, weight_decay=2e-4, evolver=evolver,
                           epochs=args.epochs, batch_size=args.batch_size, seed=seed, out_dir=run_dir,
                           resume=bool(saved), progress=False, run_config=config)
    m = trainer.fit(train_xy, test_xy, val=val_xy).metrics_  # CTRE-seq's switch reads val_acc only
    return {"dataset": dataset, "rule": rule_name, "seed": seed, "epochs": int(m.epoch.iloc[-1]),
            "edges": int(m.num_edges.iloc[-1]), "density": model.topology().density,
            "val_acc": float(m.val_acc.iloc[-1]), "test_acc": float(m.test_acc.iloc[-1]),
            "epoch_s": float(m.train_seconds.mean()), "evolve_s": float(m.evolve_seconds.mean()),
            "switched": getattr(evolver.rule.grow, "switched", None)}


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path.with_name(path.name + ".tmp"), index=False)
    os.replace(path.with_name(path.name + ".tmp"), path)  # never a half-written table


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    s = runs.groupby(["dataset", "rule"], sort=False).agg(
        seeds=("seed", "count"), epochs=("epochs", "first"), edges=("edges", "first"), density=("density", "first"),
        acc_mean=("test_acc", "mean"), acc_std=("test_acc", "std"), val_acc=("val_acc", "mean"),
        evolve_s=("evolve_s", "mean"), epoch_s=("epoch_s", "mean")).reset_index()
    s["acc_std"], s["density %"] = s["acc_std"].fillna(0.0), 100 * s["density"]
    s["test acc %"] = [f"{100 * m:.2f} ± {100 * sd:.2f}" for m, sd in zip(s.acc_mean, s.acc_std)]
    return s


def main(argv=None) -> int:
    args, t_start, rows = parse_args(argv), time.perf_counter(), []
    out, hidden, rules = Path(args.out), [int(h) for h in args.hidden.split(",")], args.rules.split(",")
    for name in [d.strip() for d in args.datasets.split(",")]:
        info = datasets.info(name)
        (X, y), (Xte, yte) = datasets.load(name, "train"), datasets.load(name, "test")
        tr, va = datasets.stratified_split(y.numpy(), 0.1, seed=0)
        Xtr, Xva = X[tr], X[va]  # standardised with statistics of the training part only
        Xtr, Xva, Xte = datasets.standardize(Xtr, Xva, Xte) if args.standardize else (Xtr, Xva, Xte)
        data = (Xtr, y[tr]), (Xva, y[va]), (Xte, yte)
        sizes = [info.n_features, *hidden, info.n_classes]
        for seed in range(args.seeds):
            for rule_name in rules:
                run_dir = out / info.name / f"{rule_name}-seed{seed}"
                t0 = time.perf_counter()
                rows.append(train(rule_name, info.name, sizes, data, args, seed, run_dir))
                print(f"{info.name} {rule_name} seed {seed}: test acc {rows[-1]['test_acc']:.4f} "
                      f"({time.perf_counter() - t0:.0f} s) -> {run_dir}", flush=True)
        runs = pd.DataFrame([r for r in rows if r["dataset"] == info.name])
        write_csv(runs, out / info.name / "runs.csv")
        write_csv(summarize(runs), out / info.name / "summary.csv")
        reported = next((r for r in COSINE_RULES if r in rules), rules[0])
        if args.bootstrap > 0:
            from analysis.report import build_report

            report = build_report(out / info.name / f"{reported}-seed0", bootstrap=args.bootstrap, seed=0)
            print(f"report of the seed-0 {reported} run: {report}", flush=True)

    s = summarize(pd.DataFrame(rows))
    print()
    print(s[["dataset", "rule", "seeds", "epochs", "test acc %", "val_acc", "edges", "density %", "epoch_s",
             "evolve_s"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nTarget: at ε = {args.epsilon:g} some cosine rule ≥ SET (cosine ranking mode: {args.mode})")
    for d, grp in s.groupby("dataset", sort=False):
        acc = grp.set_index("rule")["acc_mean"] * 100
        cos = acc[[r for r in COSINE_RULES if r in acc]]
        if "set" in acc and len(cos):
            print(f"  {d}: best cosine rule {cos.idxmax()} {cos.max():.2f} % vs SET {acc['set']:.2f} % -> "
                  f"{'met' if cos.max() >= acc['set'] else 'missed'}")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; run directories under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
