"""Watch a network evolve: a dynamic GEXF of a SET run, to play on Gephi's timeline.

topo.io.write_gexf_dynamic turns a History into GEXF 1.3 with time = epoch: every edge ever alive
carries one spell per life (pruned at epoch b → its spell ends at b; regrown → a new spell), its
weight per epoch, and every neuron its in/out degree and strength per epoch plus a position by layer
(x = layer, y = index), so Gephi shows the layered network without running a layout.

Without --run it trains a small SET-MLP on digits (64-100-100-10, ε = 10: a few thousand edges,
smooth to play) into --out/run with an HTML report; with --run it exports an existing run (for the
784-1000-1000-1000-10 networks export one layer, e.g. --layers 0: all of them is ~150 MB for 10
epochs).

    python examples/gephi_timeline.py                       # digits, 20 epochs
    python examples/gephi_timeline.py --run runs/examples/set_vs_dense/mnist/set-seed0 --layers 0
    python examples/gephi_timeline.py --smoke               # seconds (CI)
"""

import argparse
import time
from pathlib import Path

import numpy as np

import topo
from topo import datasets
from topo.runs import RunDir

HOW_TO_PLAY = """\
How to play {path} in Gephi (0.10):
  1. File > Open... > {name}. The import report says "Dynamic graph" with time as intervals; keep
     "Graph type: directed" and press OK. Nodes come with positions: columns are the neuron layers.
  2. Window > Timeline, then "Enable timeline" in the bar at the bottom. Drag the two edges of the
     selected window to a width below one epoch (e.g. 0.5): Gephi reads interval bounds as closed,
     so a window that touches an epoch shows the pruned and the regrown edges of that epoch together.
  3. Press play (the gear beside it sets the step, e.g. 1 epoch, and the delay). Edges appear and
     vanish as SET rewires them; the window's position is the epoch.
  4. Appearance > Nodes > Size > Ranking > out_degree (or out_strength), Apply, and switch on
     auto-apply (the button beside Apply) so sizes follow the timeline: input pixels that matter
     grow, border pixels shrink. Edge weights change with time too (Appearance > Edges > Ranking > weight).
  5. Statistics run on the current window (e.g. Average Degree), and File > Export > Graph file
     writes the network of one instant.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="dynamic GEXF of a SET run for Gephi's timeline",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", help="export this run directory (its history) instead of training")
    p.add_argument("--datasets", default="digits", help="dataset to train on (one name)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=1, help="number of seeds: the first is used")
    p.add_argument("--hidden", default="100,100")
    p.add_argument("--epsilon", type=float, default=10.0)
    p.add_argument("--layers", help="comma-separated layers to export (default all)")
    p.add_argument("--no-weights", action="store_true", help="leave out the per-epoch edge weights (smaller)")
    p.add_argument("--out", default="runs/examples/gephi_timeline")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: 3 epochs")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.hidden = 3, "32,32"
    return args


def train_set(args, run_dir: Path) -> Path:
    info = datasets.info(args.datasets)
    sizes = [info.n_features, *map(int, args.hidden.split(",")), info.n_classes]
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=args.epsilon, seed=0), dropout=0.3, seed=0,
                         regrow_init="zeros")  # regrown weights start at 0, as in SET's Keras code
    trainer = topo.Trainer(model, lr=0.05, momentum=0.9, weight_decay=2e-4, batch_size=32,
                           evolver=topo.Evolver(model, topo.rules.SET(0.3), seed=0), epochs=args.epochs, seed=0,
                           out_dir=run_dir, resume=(run_dir / RunDir.CHECKPOINT).exists(), progress=False,
                           run_config={"dataset": info.name, "example": "gephi_timeline", "epsilon": args.epsilon})
    trainer.fit(datasets.load(info.name, "train"), datasets.load(info.name, "test"))
    print(trainer.metrics_[["epoch", "train_loss", "test_acc", "num_edges"]].to_string(index=False))
    from analysis.report import build_report

    print(f"report: {build_report(run_dir, bootstrap=50)}")
    return run_dir


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run) if args.run else train_set(args, out / "run")
    history = RunDir(run_dir).read_history()  # verified against the run's manifest
    layers = list(range(history.num_layers)) if args.layers is None else [int(k) for k in args.layers.split(",")]

    path = out / "evolution.gexf"
    t0 = time.perf_counter()
    topo.io.write_gexf_dynamic(history, path, layers=layers, weights=not args.no_weights)
    seconds = time.perf_counter() - t0

    final = history.final
    print(f"\n{'layer':>5} {'n_in':>6} {'n_out':>6} {'edges now':>10} {'edges ever':>11} {'lives':>8}")
    for k in layers:
        iv = history.edge_intervals(k)
        ever = np.unique(iv["dst"].astype(np.int64) * history.initial[k].n_in + iv["src"]).size
        g = history.initial[k]
        print(f"{k:>5} {g.n_in:>6} {g.n_out:>6} {final[k].num_edges:>10} {ever:>11} {iv['src'].size:>8}")
    print(f"\n{path}: {path.stat().st_size / 2**20:.1f} MiB, epochs {history.epochs[0]:g}-{history.epochs[-1]:g}, "
          f"written in {seconds:.1f} s\n")
    print(HOW_TO_PLAY.format(path=path, name=path.name))
    print(f"wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
