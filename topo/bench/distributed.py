"""Data-parallel training on one machine: N gloo processes against one process, same run settings.

For every seed the same SET-MLP is trained twice with :class:`topo.Trainer`:
in this process, and in ``--nproc`` processes spawned by
:func:`topo.distributed.launch` (each takes a share of every global batch;
gradients are all-reduced; rank 0 evolves and the others replay it; after
every evolution step each rank's topology and values are checked against rank
0's, so a finished run *is* the proof that they stayed identical). The table
gives final test accuracy (mean ± std over seeds), seconds per epoch, and the
ranks' final model digests. Both sides use the same number of torch threads per
process (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import statistics
import time

__all__ = ["train_once", "compare", "add_arguments", "run", "main"]

HELP = "N-process (gloo) vs 1-process training accuracy and epoch time with identical topologies"


def train_once(dataset: str, hidden: list[int], epsilon: float, epochs: int, seed: int, batch_size: int,
               lr: float, dropout: float, threads: int | None = 1) -> dict:
    """Train one run here (or as one rank of a launched group); final metrics and the model digest."""
    import torch

    import topo
    from topo import datasets
    from topo.distributed import check_consistent, get_info

    if threads:
        torch.set_num_threads(threads)
    train, test = datasets.load(dataset, "train"), datasets.load(dataset, "test")
    info = datasets.info(dataset)
    sizes = [info.n_features, *hidden, info.n_classes]
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=epsilon, seed=seed), dropout=dropout, seed=seed)
    evolver = topo.Evolver(model, topo.rules.SET(0.3), seed=seed)
    t0 = time.perf_counter()
    trainer = topo.Trainer(model, evolver=evolver, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           progress=False).fit(train, test)
    seconds = time.perf_counter() - t0
    m = trainer.metrics_
    dist = get_info()
    return {"test_acc": float(m.test_acc.iloc[-1]), "train_loss": float(m.train_loss.iloc[-1]),
            "epoch_s": seconds / epochs, "digest": check_consistent(model, values=True),
            "rank": 0 if dist is None else dist.rank, "edges": int(m.num_edges.iloc[-1])}


def compare(nproc: int = 2, seeds=(0, 1, 2), **settings) -> list[dict]:
    """Both trainings per seed; prints one line per run and a summary; returns the rows."""
    from topo.distributed import launch

    rows = []
    for seed in seeds:
        one = train_once(seed=seed, **settings)
        ranks = launch(nproc, train_once, seed=seed, **settings)
        same = len({r["digest"] for r in ranks}) == 1
        row = {"seed": seed, "acc_1": one["test_acc"], "acc_n": ranks[0]["test_acc"], "epoch_s_1": one["epoch_s"],
               "epoch_s_n": ranks[0]["epoch_s"], "ranks_identical": same, "edges": one["edges"]}
        rows.append(row)
        print(f"seed {seed}: 1 process acc {row['acc_1']:.4f} ({row['epoch_s_1']:.2f} s/epoch) | {nproc} processes "
              f"acc {row['acc_n']:.4f} ({row['epoch_s_n']:.2f} s/epoch) | ranks identical: {same}", flush=True)

    def ms(key):
        vals = [r[key] for r in rows]
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    (a1, s1), (an, sn) = ms("acc_1"), ms("acc_n")
    t1, tn = ms("epoch_s_1")[0], ms("epoch_s_n")[0]
    print(f"\n{settings['dataset']}: 1 process {a1:.4f} ± {s1:.4f}, {nproc} processes {an:.4f} ± {sn:.4f} "
          f"(difference {an - a1:+.4f}); epoch time {t1:.2f} s vs {tn:.2f} s (x{t1 / tn:.2f}); "
          f"topologies identical on all ranks in every run: {all(r['ranks_identical'] for r in rows)}")
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits")
    p.add_argument("--hidden", default="256,256", help="hidden sizes, comma separated (default 256,256)")
    p.add_argument("--epsilon", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")


def run(args) -> int:
    from ..cli.factory import parse_hidden
    from ..distributed import check_nproc

    check_nproc(args.nproc)
    compare(args.nproc, args.seeds, dataset=args.dataset, hidden=parse_hidden(args.hidden), epsilon=args.epsilon,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, dropout=args.dropout,
            threads=args.threads)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))
