"""Epoch time of a SET-MLP against the dense torch MLP of the same shape, and SET's evolution share.

Both models are ``784-1000-1000-1000-10`` (``--hidden``) trained by
:class:`topo.Trainer` — the loop ``topo train`` runs — with SGD (lr 0.01,
momentum 0.9, weight decay 2e-4), dropout 0.3, batch 128. The SET-MLP starts
Erdős–Rényi at ``ε=20`` (the 1000→10 output layer comes out dense) and evolves
with ``SET(ζ=0.3)`` over all its layers after its first epoch; the dense MLP is
``nn.Linear`` layers. Data: the Fashion-MNIST training split (60 000 images) when
it is available locally, else synthetic data of the same shape (the output says
which). ``--batches N`` trains on ``N · batch`` samples per epoch and scales the
time up to the full split (stated in the output); the evolution time is not
scaled (SET's step reads weights, not data).

Each round trains the dense MLP one epoch and the SET-MLP two (epoch, evolution,
epoch); rounds alternate the two so that load drift on a shared machine hits
both, and medians are reported. Targets: dense epoch ≥ 3× the SET epoch;
evolution ≤ 5 % of the SET epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

__all__ = ["load_data", "train_epochs", "run_training", "add_arguments", "run", "main"]

HELP = "epoch time of a SET-MLP vs the dense MLP (784-1000-1000-1000-10, Fashion-MNIST) and evolution share"
TARGET_SPEEDUP = 3.0
TARGET_EVOLVE_SHARE = 0.05


def load_data(name: str = "fashion-mnist", seed: int = 0):
    """``(X, y, description)``: the training split of ``name``, or same-shape synthetic data if absent."""
    from .. import datasets
    from ..errors import DatasetError

    try:
        X, y = datasets.load(name, "train", download=False)
        return X, y, f"{name} train split ({X.shape[0]} samples)"
    except (DatasetError, FileNotFoundError, OSError) as err:
        spec = f"synthetic:n=75000,features=784,classes=10,informative=200,seed={seed}"
        X, y = datasets.load(spec, "train")
        return X, y, (f"SYNTHETIC data of Fashion-MNIST's shape ({X.shape[0]} x 784, 10 classes) — "
                      f"{name} is not available here ({str(err).splitlines()[0][:120]})")


def train_epochs(X, y, sizes, rule: str, epochs: int, epsilon: float = 20.0, zeta: float = 0.3,
                 batch: int = 128, seed: int = 0, device="cpu", backend: str = "auto", dropout: float = 0.3):
    """Train a fresh model ``epochs`` epochs with :class:`topo.Trainer`; its ``metrics_`` and edge count."""
    from .. import rules
    from ..cli.factory import build_evolver, build_model
    from ..train import Trainer

    model = build_model(sizes, rule, epsilon=epsilon, dropout=dropout, backend=backend, seed=seed, device=device)
    evolver = build_evolver(model, rules.SET(zeta), seed=seed) if rule != "dense" else None
    t = Trainer(model, evolver=evolver, epochs=epochs, batch_size=batch, lr=0.01, momentum=0.9,
                weight_decay=2e-4, seed=seed, device=device, progress=False).fit((X, y))
    return t.metrics_


def run_training(X, y, sizes, epsilon=20.0, zeta=0.3, batch=128, rounds=2, scale=1.0, seed=0, device="cpu",
                 backend="auto", dropout=0.3, log=print) -> dict:
    """Alternate dense (1 epoch) and SET (2 epochs) rounds; epoch times scaled by ``scale``."""
    # Warm-up (untimed): first calls build CSR structures, MKL handles, allocator pools.
    n_warm = min(X.shape[0], 4 * batch)
    for rule in ("dense", "set"):
        train_epochs(X[:n_warm], y[:n_warm], sizes, rule, 1, epsilon, zeta, batch, seed, device, backend, dropout)
    dense, sparse, evolve = [], [], []
    edges = {}
    for r in range(rounds):
        m = train_epochs(X, y, sizes, "dense", 1, epsilon, zeta, batch, seed + r, device, backend, dropout)
        dense.append(float(m.train_seconds.iloc[0]) * scale)
        edges["dense"] = int(m.num_edges.iloc[0])
        m = train_epochs(X, y, sizes, "set", 2, epsilon, zeta, batch, seed + r, device, backend, dropout)
        sparse += [float(s) * scale for s in m.train_seconds]
        evolve.append(float(m.evolve_seconds.iloc[0]))
        edges["set"] = int(m.num_edges.iloc[0])
        log(f"  round {r + 1}/{rounds}: dense epoch {dense[-1]:.2f} s | SET epochs "
            f"{sparse[-2]:.2f} s, {sparse[-1]:.2f} s | SET evolution {evolve[-1] * 1000:.1f} ms")
    d, s, e = statistics.median(dense), statistics.median(sparse), statistics.median(evolve)
    return {"dense_epoch_s": dense, "set_epoch_s": sparse, "set_evolve_s": evolve, "edges": edges,
            "dense_epoch_median_s": d, "set_epoch_median_s": s, "set_evolve_median_s": e,
            "speedup": d / s, "evolve_share": e / s}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist", help="training data (default: fashion-mnist; "
                                                              "synthetic of the same shape if absent)")
    p.add_argument("--hidden", default="1000,1000,1000", help="hidden sizes (default: 1000,1000,1000)")
    p.add_argument("--epsilon", type=float, default=20.0, help="SET epsilon (default: 20)")
    p.add_argument("--zeta", type=float, default=0.3, help="SET zeta (default: 0.3)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--batches", type=int, default=None,
                   help="train on this many batches per epoch and scale the time to the full split "
                        "(default: full epochs)")
    p.add_argument("--rounds", type=int, default=2, help="alternating dense/SET rounds (default: 2)")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout of both models (default: 0.3)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--backend", default="auto", help="sparse backend of the SET-MLP (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the measurements to a JSON file")


def run(args) -> int:
    from ..cli.factory import parse_hidden
    from ..errors import ParameterError

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"--device {args.device!r}: CUDA is not available on this machine")
    for name in ("batch", "rounds", "batches"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ParameterError(f"--{name} must be a positive integer, got {v}")
    X, y, what = load_data(args.dataset, args.seed)
    n_full = X.shape[0]
    scale = 1.0
    if args.batches is not None and args.batches * args.batch < n_full:
        n = args.batches * args.batch
        X, y, scale = X[:n], y[:n], n_full / n
        what += f"; timing {args.batches} batches per epoch, scaled x{scale:.2f} to the full {n_full}"
    sizes = [X.shape[1], *parse_hidden(args.hidden), int(y.max()) + 1]
    print(f"topo bench training: torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"data: {what}")
    print(f"model {'-'.join(map(str, sizes))}, batch {args.batch}, SGD lr 0.01 momentum 0.9 wd 2e-4, "
          f"dropout {args.dropout:g}; "
          f"SET epsilon {args.epsilon:g}, zeta {args.zeta:g}, backend {args.backend}")
    res = run_training(X, y, sizes, args.epsilon, args.zeta, args.batch, args.rounds, scale, args.seed, device,
                       args.backend, args.dropout)
    res.update({"sizes": sizes, "data": what, "threads": torch.get_num_threads(), "device": str(device),
                "batch": args.batch, "scale": scale, "dropout": args.dropout, "torch": torch.__version__})
    e = res["edges"]
    print(f"\nedges: SET {e['set']:,} vs dense {e['dense']:,} ({e['set'] / e['dense']:.2%})")
    print(f"dense MLP epoch  {res['dense_epoch_median_s']:8.2f} s (median of {len(res['dense_epoch_s'])})")
    print(f"SET-MLP epoch    {res['set_epoch_median_s']:8.2f} s (median of {len(res['set_epoch_s'])})")
    print(f"SET evolution    {res['set_evolve_median_s']:8.3f} s (all layers, median of {len(res['set_evolve_s'])})")
    print("\nratios (same run):")
    ok = res["speedup"] >= TARGET_SPEEDUP
    print(f"  epoch time dense / SET: {res['speedup']:.2f}x  (target >= {TARGET_SPEEDUP:g}x: "
          f"{'met' if ok else 'NOT met'})")
    ok = res["evolve_share"] <= TARGET_EVOLVE_SHARE
    print(f"  evolution / SET epoch:  {res['evolve_share']:.2%}  (target <= {TARGET_EVOLVE_SHARE:.0%}: "
          f"{'met' if ok else 'NOT met'})")
    if args.json:
        from ._measure import write_json
        write_json(args.json, res)
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
