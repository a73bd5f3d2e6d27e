"""topo inside your own model: `topo.sparsify` two ordinary torch models and evolve them in a plain loop.

1. A CNN with a dense classifier head (the SET paper's CNN setting: convolutions stay dense, the
   fully connected layers become sparse and evolve with SET after every epoch but the last).
2. A transformer-style model whose MLP block (fc1 → GELU → fc2 inside a residual) is sparsified and
   evolved with RigL every --every optimizer steps until 75 % of training, ζ decaying by a cosine.

Module names, dtype and device are kept; the loop is plain torch and calls `evolver.step()` when
`evolver.due(...)` says so. Writes metrics.csv and history.npz per model under --out.

    python examples/sparsify_your_model.py                 # MNIST, 3 epochs
    python examples/sparsify_your_model.py --smoke         # digits, seconds (CI)
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


class CNN(nn.Module):
    """conv → pool → conv → pool, then a two-layer classifier head: plain torch."""

    def __init__(self, side: int, n_classes: int, hidden: int):
        super().__init__()
        self.side = side
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * (side // 4) ** 2, hidden), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.head(self.features(x.reshape(-1, 1, self.side, self.side)))


class MLPBlock(nn.Module):  # the MLP half of a transformer block: x + fc2(gelu(fc1(norm(x))))
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))


class RowTransformer(nn.Module):
    """Image rows as tokens: embed each row, one attention layer, one MLP block, mean-pool, classify."""

    def __init__(self, side: int, n_classes: int, d: int, hidden: int):
        super().__init__()
        self.side = side
        self.embed = nn.Linear(side, d)
        self.pos = nn.Parameter(torch.zeros(side, d))
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.mlp = MLPBlock(d, hidden)
        self.out = nn.Linear(d, n_classes)

    def forward(self, x):
        h = self.embed(x.reshape(-1, self.side, self.side)) + self.pos
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.out(self.mlp(h).mean(1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="sparsify and evolve your own torch models",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="mnist", help="a square image dataset of topo.datasets")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--epsilon", type=float, default=10.0, help="SET's ε of the sparsified layers")
    p.add_argument("--every", type=int, default=100, help="RigL: optimizer steps between updates")
    p.add_argument("--out", default="runs/examples/sparsify_your_model")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, 2 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        args.dataset, args.epochs, args.every = "digits", 2, 10
    return args


def accuracy(model, X, y):
    model.eval()
    with torch.no_grad():
        return float((torch.cat([model(xb).argmax(1) for xb in X.split(1024)]) == y).float().mean())


def train(name, model, evolver, optimizer, data, epochs, out: Path, seed=0):  # a plain torch loop
    (Xtr, ytr), (Xte, yte) = data
    shuffle, rows, step = torch.Generator().manual_seed(seed), [], 0
    for epoch in range(1, epochs + 1):
        model.train()
        t0, loss_sum, births = time.perf_counter(), 0.0, 0
        for idx in torch.randperm(len(Xtr), generator=shuffle).split(64):
            loss = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step, loss_sum = step + 1, loss_sum + loss.item() * len(idx)
            if evolver.due(step=step):  # step-wise schedules (RigL)
                births += sum(r["births"] for r in evolver.step(step=step, data=(Xtr[idx], ytr[idx])))
                model.train()
        if evolver.due(epoch=epoch):  # epoch-wise schedules (SET)
            births += sum(r["births"] for r in evolver.step(epoch=epoch, data=(Xtr, ytr)))
        rows.append({"epoch": epoch, "train_loss": loss_sum / len(Xtr), "test_acc": accuracy(model, Xte, yte),
                     "num_edges": sum(m.num_edges for m in evolver.layers), "births": births,
                     "seconds": time.perf_counter() - t0})
        print(f"{name} epoch {epoch}: loss {rows[-1]['train_loss']:.4f}, test acc {rows[-1]['test_acc']:.4f}, "
              f"{births} rewired", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    metrics, history = out / topo.runs.RunDir.METRICS, out / topo.runs.RunDir.HISTORY  # a run's file names
    pd.DataFrame(rows).to_csv(tmp := metrics.with_name(metrics.name + ".tmp"), index=False)
    os.replace(tmp, metrics)  # never a half-written file
    evolver.history_.save(history)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    info = datasets.info(args.dataset)
    side = info.image_shape[0]
    data = (datasets.load(info.name, "train"), datasets.load(info.name, "test"))
    steps = args.epochs * -(-len(data[0][0]) // 64)
    out = Path(args.out)

    # 1. The CNN: sparsify the head only; SET after every epoch but the last.
    cnn = CNN(side, info.n_classes, hidden=64 if args.smoke else 500)
    dense_head = [m.weight.detach().clone() for m in cnn.head if isinstance(m, nn.Linear)]
    t0 = topo.sparsify(cnn, epsilon=args.epsilon, include="head.*", seed=0)
    kept = all(torch.equal(m.weight.detach(), w[m.edge_index[1], m.edge_index[0]])
               for (_, m), w in zip(topo.nn.sparse_layers(cnn), dense_head))
    print(f"CNN head sparsified: {t0.sizes}, {t0.num_edges} edges, dense values kept at the edges = {kept}")
    print(cnn.head)
    opt = torch.optim.SGD(cnn.parameters(), lr=0.1 if args.smoke else 0.01, momentum=0.9, weight_decay=2e-4)
    ev = topo.Evolver(cnn, topo.rules.SET(0.3), optimizer=opt, seed=0,
                      schedule=topo.rules.Schedule(total=args.epochs))
    cnn_metrics = train("cnn", cnn, ev, opt, data, args.epochs, out / "cnn")

    # 2. The transformer: sparsify its MLP block (attention, embedding and classifier stay dense); RigL.
    tr = RowTransformer(side, info.n_classes, d=32, hidden=128 if args.smoke else 512)
    t1 = topo.sparsify(tr, epsilon=args.epsilon, include="mlp.fc?", seed=1)
    print(f"MLP block sparsified: {[n for n, _ in topo.nn.sparse_layers(tr)]}, sizes {t1.sizes}, "
          f"density {t1.density:.3f}")
    opt = torch.optim.Adam(tr.parameters(), lr=3e-3)
    rigl = topo.rules.Schedule(decay="cosine", every=args.every, stop_at=0.75, total=steps)
    ev = topo.Evolver(tr, "rigl", optimizer=opt, seed=0, schedule=rigl)
    tr_metrics = train("transformer", tr, ev, opt, data, args.epochs, out / "transformer")
    updates = len(ev.history_.epochs) - 1  # the history's first entry is the start
    print(f"\nRigL updates: {updates} (every {args.every} of {steps} steps, until step {int(0.75 * steps)})\n"
          f"final test accuracy: CNN {cnn_metrics.test_acc.iloc[-1]:.4f}, "
          f"transformer {tr_metrics.test_acc.iloc[-1]:.4f}")
    return 0 if kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
