"""SET-RBM vs dense RBM vs static sparse RBM (Mocanu et al. 2018, the RBM half of the SET paper).

Each variant is a Bernoulli–Bernoulli RBM on the binarised data (pixels > 0.5) trained by CD-1 with the
paper's SGD settings (lr 0.01, momentum 0.9, weight decay 2e-4, batch 100): ``set`` is a SparseRBM at
ε = 11 evolved by SET (ζ = 0.3) after every epoch but the last, ``static`` the same Erdős–Rényi RBM kept
fixed, ``dense`` the fully connected RBM. After training the test log-likelihood is estimated by annealed
importance sampling (nats, ±3σ of log Z). The table gives it with the parameters and the time per epoch;
for image data a heat map shows the visible neurons' degree over the epochs (the paper's MNIST figure).

    python examples/set_rbm.py --datasets mnist,coil20 --epochs 10 --hidden 500
    python examples/set_rbm.py --smoke        # digits, 16 hidden units, 2 epochs, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import topo
from topo.nn import SparseRBM, ais

VARIANTS = ("set", "static", "dense")


def binarised(name: str):
    X, _ = topo.datasets.load(name, "train")
    T, _ = topo.datasets.load(name, "test")
    return (torch.as_tensor(X) > 0.5).float(), (torch.as_tensor(T) > 0.5).float()


def train_one(variant: str, dataset: str, X, T, hidden: int, epochs: int, seed: int, out: Path, betas: int,
              runs: int) -> dict:
    n_v = X.shape[1]
    rbm = SparseRBM(n_v, hidden, density=1.0, backend="dense", seed=seed) if variant == "dense" \
        else SparseRBM(n_v, hidden, epsilon=11, seed=seed)
    evolver = topo.Evolver(rbm, topo.rules.SET(0.3), seed=seed) if variant == "set" else None
    if (out / "result.json").is_file():  # finished before: reuse it
        return json.loads((out / "result.json").read_text())
    resume = (out / topo.runs.RunDir.CHECKPOINT).is_file()
    trainer = topo.train.RBMTrainer(rbm, evolver=evolver, epochs=epochs, batch_size=100, seed=seed, out_dir=out,
                                    resume=resume, progress=False, run_config={"dataset": dataset, "variant": variant})
    trainer.fit(X, T)
    rbm = rbm.double()
    t0 = time.perf_counter()
    est = ais.ais_log_partition(rbm, X.double(), n_betas=betas, n_runs=runs, generator=seed)
    ll = ais.log_likelihood(rbm, T.double(), est)
    m = trainer.metrics_
    result = {"variant": variant, "seed": seed, "edges": rbm.num_edges,
              "parameters": rbm.num_edges + rbm.n_visible + rbm.n_hidden,
              "test_ll": ll.mean, "test_ll_low": ll.low, "test_ll_high": ll.high, "log_z": est.log_z,
              "seconds_per_epoch": float(m.train_seconds.median()), "ais_seconds": time.perf_counter() - t0,
              "test_recon": float(m.test_reconstruction_error.iloc[-1]),
              "pseudo_likelihood": float(m.test_pseudo_likelihood.iloc[-1])}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result



def degree_heatmap(run: Path, shape, path: Path) -> None:
    """Out-degree of every visible neuron at a few epochs, laid out as the image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = topo.History.load(run / topo.runs.RunDir.HISTORY)
    epochs = sorted({h.epochs[0], h.epochs[len(h.epochs) // 2], h.epochs[-1]})
    fig, axes = plt.subplots(1, len(epochs), figsize=(3 * len(epochs), 3))
    for ax, e in zip(np.atleast_1d(axes), epochs):
        g = h.topology(e).layers[0]
        deg = torch.bincount(g.src, minlength=g.n_in).numpy().reshape(shape)
        ax.imshow(deg, cmap="viridis")
        ax.set_title(f"epoch {e:g}")
        ax.axis("off")
    fig.suptitle("visible-neuron degree (SET-RBM)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,coil20")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--betas", type=int, default=10000, help="AIS inverse temperatures (default 10000)")
    p.add_argument("--runs", type=int, default=100, help="AIS runs (default 100)")
    p.add_argument("--smoke", action="store_true", help="digits, 16 hidden units, 2 epochs, 500 temperatures")
    p.add_argument("--out", default="runs/examples/set_rbm")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.smoke:
        a.datasets, a.hidden, a.epochs, a.betas, a.runs = "digits", 16, 2, 500, 50
    shapes = {"mnist": (28, 28), "fashion-mnist": (28, 28), "coil20": (32, 32), "digits": (8, 8)}
    rows = []
    for name in a.datasets.split(","):
        X, T = binarised(name)
        for seed in range(a.seeds):
            for v in VARIANTS:
                out = Path(a.out) / name / f"{v}-seed{seed}"
                row = train_one(v, name, X, T, a.hidden, a.epochs, seed, out, a.betas, a.runs)
                rows.append({"dataset": name, **row})
        if name in shapes:
            degree_heatmap(Path(a.out) / name / "set-seed0", shapes[name], Path(a.out) / name / "visible_degree.png")
    import pandas as pd

    df = pd.DataFrame(rows)
    table = df.groupby(["dataset", "variant"], sort=False).agg(
        test_ll=("test_ll", "mean"), ll_pm=("test_ll_high", "mean"), parameters=("parameters", "first"),
        s_per_epoch=("seconds_per_epoch", "median"), test_recon=("test_recon", "mean"))
    table["ll_pm"] = table["ll_pm"] - table["test_ll"]  # half the ±3σ band of log Z
    print(f"CD-1, {a.epochs} epochs, {a.hidden} hidden, AIS {a.betas} temperatures x {a.runs} runs")
    print(table.to_string(float_format=lambda x: f"{x:.4g}"))
    df.to_csv(Path(a.out) / "results.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
