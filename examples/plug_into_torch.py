"""Bring your own torch model: a small CNN whose classifier head is truly sparse and evolves with SET.

topo.nn.SparseLinear is an ordinary nn.Module (parameters, state_dict, .to(), hooks, any optimizer),
so it drops into any model. topo.Evolver finds every SparseLinear in the model, rewires it after an
epoch and carries the optimizer's momentum for the surviving edges; the training loop stays yours.

The script trains the CNN with a plain torch loop, evolves the head with --rule (any
topo.rules.from_name name: set, ctre-sim, rigl, cosine+cosine, ...), checks that a state_dict saved
after evolution loads into a fresh model (the sparse layers resize to the saved edges), and writes a
run directory (topo.runs.RunDir: config, metrics, history and the model's state_dict, all listed with
their sha256 in its manifest, written under its lock) with an HTML report.

    python examples/plug_into_torch.py                        # MNIST, 5 epochs
    python examples/plug_into_torch.py --rule ctre-sim --datasets fashion-mnist
    python examples/plug_into_torch.py --smoke                # seconds (CI)
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import topo
from topo import datasets
from topo.runs import RunDir


class SparseHeadCNN(nn.Module):
    """Two dense conv blocks, then a SparseLinear → ReLU → dropout → SparseLinear classifier."""

    def __init__(self, side: int, n_classes: int, hidden: int, epsilon: float, seed: int):
        super().__init__()
        self.side = side
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        n_features = 32 * (side // 4) ** 2
        self.head = nn.Sequential(
            topo.nn.SparseLinear(n_features, hidden, epsilon=epsilon, seed=seed), nn.ReLU(), nn.Dropout(0.3),
            topo.nn.SparseLinear(hidden, n_classes, epsilon=epsilon, seed=seed + 1))

    def forward(self, x):
        return self.head(self.features(x.reshape(-1, 1, self.side, self.side)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="a torch CNN with an evolving sparse head",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default="mnist", help="an image dataset of topo.datasets (one name)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=1, help="number of seeds: the first is used")
    p.add_argument("--rule", default="set")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--epsilon", type=float, default=10.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--out", default="runs/examples/plug_into_torch")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: digits, 2 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        args.datasets, args.epochs, args.hidden, args.lr = "digits", 2, 64, 0.05
    return args


def open_run(out: Path) -> RunDir:
    """The example's run directory, locked: a new one, or its own earlier run (replaced); any other run is refused."""
    run = RunDir(out)
    if run.holds_run and run.read_config(verify=False).get("example") != "plug_into_torch":
        raise SystemExit(f"{out} holds a run that is not this example's; choose another --out")
    return run.open(resume=run.holds_run)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out, seed = Path(args.out), 0
    run = open_run(out)  # fails at once if another process is writing there
    info = datasets.info(args.datasets)
    if info.image_shape is None or info.image_shape[0] != info.image_shape[1]:
        raise SystemExit(f"{info.name} is not a square image dataset")
    Xtr, ytr = datasets.load(info.name, "train")
    Xte, yte = datasets.load(info.name, "test")

    torch.manual_seed(seed)
    model = SparseHeadCNN(info.image_shape[0], info.n_classes, args.hidden, args.epsilon, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=2e-4)
    # The Evolver finds the SparseLinear layers; regrown weights start at 0, as in SET's Keras code.
    evolver = topo.Evolver(model, args.rule, optimizer=optimizer, seed=seed, init="zeros")
    print(model)

    def accuracy(X, y):
        model.eval()
        with torch.no_grad():
            return float((torch.cat([model(xb).argmax(1) for xb in X.split(1024)]) == y).float().mean())

    rows, shuffle = [], torch.Generator().manual_seed(seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0, loss_sum = time.perf_counter(), 0.0
        for idx in torch.randperm(len(Xtr), generator=shuffle).split(128):
            loss = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
        row = {"epoch": epoch, "train_loss": loss_sum / len(Xtr), "test_acc": accuracy(Xte, yte),
               "num_edges": sum(m.num_edges for m in evolver.layers), "train_seconds": time.perf_counter() - t0,
               "births": 0}
        if epoch < args.epochs:  # SET's schedule: evolve after every epoch but the last
            changes = evolver.step(epoch=epoch, data=(Xtr, ytr), metrics={"val_acc": row["test_acc"]})
            row["births"] = sum(c["births"] for c in changes)
        rows.append(row)
        print(f"epoch {epoch}: loss {row['train_loss']:.4f}, test acc {row['test_acc']:.4f}, "
              f"{row['num_edges']} head edges, {row['births']} rewired", flush=True)

    # The evolved model is an ordinary nn.Module: its state_dict round-trips into a fresh instance.
    run.write_file("model.pt", lambda path: torch.save(model.state_dict(), path))
    fresh = SparseHeadCNN(info.image_shape[0], info.n_classes, args.hidden, args.epsilon, seed=123)
    fresh.load_state_dict(torch.load(run.verify("model.pt"), weights_only=True))
    fresh.eval()
    model.eval()
    with torch.no_grad():
        same = torch.equal(fresh(Xte[:256]), model(Xte[:256]))
    print(f"state_dict round trip into a fresh model: identical outputs = {same}")

    metrics = pd.DataFrame(rows)
    with run.transaction():  # written together (atomically, each), then listed in the manifest
        run.write_metrics(rows)
        run.write_config({"dataset": info.name, "rule": args.rule, "epochs": args.epochs, "epsilon": args.epsilon,
                          "hidden": args.hidden, "seed": seed, "example": "plug_into_torch"})
        run.write_history(evolver.history_)
    run.close()
    from analysis.report import build_report

    print(f"report: {build_report(out, bootstrap=20)}")
    dense_head = sum(m.in_features * m.out_features for m in evolver.layers)
    params = sum(p.numel() for p in model.parameters())
    print()
    print(metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nparameters: {params} in all; the sparse head holds {metrics.num_edges.iloc[-1]} weights, "
          f"{100 * metrics.num_edges.iloc[-1] / dense_head:.1f} % of a dense head's {dense_head}")
    print(f"wall time {time.perf_counter() - t_start:.0f} s; run directory {out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
