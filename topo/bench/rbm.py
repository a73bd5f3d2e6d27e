"""One CD-1 epoch of a 784→1000 SET-RBM (ε = 11) on MNIST vs the same RBM with a dense weight matrix in torch.

Both run the same algorithm (CD-1, hidden probabilities as statistics, sampled
visible reconstruction, SGD with momentum 0.9 and weight decay 2e-4, batch 100)
over the same shuffled batches: the sparse one is :class:`topo.nn.SparseRBM` +
:meth:`~topo.nn.SparseRBM.contrastive_divergence` (topo's CSR kernels), the dense
one three ``torch.mm`` per step on a ``1000 × 784`` weight. Rounds alternate
dense and sparse epochs so load drift on a shared machine hits both; medians are
reported with the ratio (target ≥ 10×). Run: ``topo bench rbm`` or
``python benchmarks/bench_rbm.py``.
"""

from __future__ import annotations

import statistics
import time

HELP = "CD-1 epoch of a 784->1000 SET-RBM (eps 11) vs a dense torch RBM on MNIST"


def add_arguments(p) -> None:
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--epsilon", type=float, default=11.0)
    p.add_argument("--samples", type=int, default=None, help="training rows per epoch (default: all 60,000)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3, help="dense/sparse epoch pairs, interleaved (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch (and kernel) threads (default 1)")
    p.add_argument("--json", help="also write the results to this JSON file")


def _dense_epoch(X, order, W, b, c, bufs, batch, gen, lr=0.01, momentum=0.9, wd=2e-4):
    import torch

    for idx in order.split(batch):
        v = X[idx]
        h0 = torch.sigmoid(torch.addmm(c, v, W.t()))
        hs = (torch.rand(h0.shape, generator=gen) < h0).to(v.dtype)
        m = torch.sigmoid(torch.addmm(b, hs, W))
        vk = (torch.rand(m.shape, generator=gen) < m).to(v.dtype)
        hk = torch.sigmoid(torch.addmm(c, vk, W.t()))
        n = v.shape[0]
        grads = (-(h0.t() @ v - hk.t() @ vk) / n, (vk - v).mean(0), (hk - h0).mean(0))
        for p, g, buf in zip((W, b, c), grads, bufs):  # torch SGD's update: buf = m·buf + g + wd·p
            buf.mul_(momentum).add_(g).add_(p, alpha=wd)
            p.add_(buf, alpha=-lr)


def run(args) -> int:
    import torch

    from .. import datasets
    from ..nn import SparseRBM
    from ._measure import write_json

    torch.set_num_threads(args.threads)
    X = torch.as_tensor(datasets.load("mnist", "train")[0], dtype=torch.float32)
    X = (X > 0.5).float()
    if args.samples:
        X = X[:args.samples]
    n_v, n_h = X.shape[1], args.hidden
    rbm = SparseRBM(n_v, n_h, epsilon=args.epsilon, seed=0)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    W = torch.randn(n_h, n_v) * 0.05
    b, c = torch.zeros(n_v), torch.zeros(n_h)
    bufs = [torch.zeros_like(t) for t in (W, b, c)]
    gen = torch.Generator().manual_seed(0)

    def sparse_epoch(order):
        for idx in order.split(args.batch_size):
            rbm.contrastive_divergence(X[idx], 1, generator=gen)
            opt.step()

    sparse_epoch(torch.arange(min(len(X), 5 * args.batch_size)))  # compile the kernels, warm the caches
    times = {"dense": [], "sparse": []}
    for r in range(args.rounds):
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(r))
        for name in ("dense", "sparse"):
            t0 = time.perf_counter()
            if name == "dense":
                _dense_epoch(X, order, W, b, c, bufs, args.batch_size, gen)
            else:
                sparse_epoch(order)
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1}: {name} epoch {times[name][-1]:.2f} s", flush=True)
    dense, sparse = statistics.median(times["dense"]), statistics.median(times["sparse"])
    out = {"n_visible": n_v, "n_hidden": n_h, "epsilon": args.epsilon, "edges": rbm.num_edges,
           "dense_weights": n_v * n_h, "samples": len(X), "batch_size": args.batch_size, "threads": args.threads,
           "dense_epoch_s": dense, "sparse_epoch_s": sparse, "ratio": dense / sparse, "times": times}
    print(f"{n_v}->{n_h} RBM, {rbm.num_edges} edges ({100 * rbm.num_edges / (n_v * n_h):.2f} % of dense), "
          f"{len(X)} samples, batch {args.batch_size}: dense CD-1 epoch {dense:.2f} s, SET-RBM {sparse:.2f} s, "
          f"dense / sparse {dense / sparse:.1f}x (target >= 10x)")
    if args.json:
        write_json(args.json, out)
    return 0


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
