"""``topo demo``: a first look at topo on scikit-learn's digits.

The demo runs in steps, one function each, so that later features add one call
to :func:`run`: build and summarise an Erdős–Rényi topology, train a SET-MLP on
it for a few epochs (seconds) into a run directory, print what happened, export
the evolution as a Gephi timeline and write the analysis report.
"""

from __future__ import annotations

from pathlib import Path

SIZES = [64, 100, 100, 10]
EPSILON = 10
SETTINGS = {"epochs": 5, "batch_size": 32, "lr": 0.05, "momentum": 0.9, "weight_decay": 2e-4, "dropout": 0.3,
            "zeta": 0.3, "activation": "relu"}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a SET-MLP on digits for a few epochs and write a run directory")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo; a previous demo "
                                                      "run there is replaced, any other run is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=SETTINGS["epochs"], help="training epochs (default: 5)")
    p.set_defaults(func=run)


def run(args) -> int:
    from topo.errors import ParameterError

    if args.epochs < 1:  # before anything is written: the demo's later steps need a trained run
        raise ParameterError(f"--epochs must be a positive integer, got {args.epochs}")
    out = Path(args.out)
    topology = build_topology(args.seed)
    trainer = train(topology, out, args.seed, args.epochs)
    print_outcome(trainer, out)
    export_timeline(trainer, out)
    write_report(out)
    return 0


def build_topology(seed: int):
    """Step 1: the Erdős–Rényi topology SET starts from, and its per-layer summary."""
    import topo

    t = topo.erdos_renyi(SIZES, epsilon=EPSILON, seed=seed)
    print(f"Erdős–Rényi topology for digits ({'-'.join(map(str, SIZES))}, epsilon={EPSILON}, seed={seed}): "
          f"{t.num_edges} edges, density {t.density:.4f}")
    print(t.summary().to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return t


def train(topology, out: Path, seed: int, epochs: int):
    """Step 2: train a SET-MLP on digits, evolving after every epoch but the last; write the run directory."""
    import torch

    import topo
    from topo import datasets

    _clear_previous_demo(out)
    # A model this small gains nothing from intra-op threads; on a busy machine they only spin.
    torch.set_num_threads(1)
    train_data, test_data = datasets.load("digits", "train"), datasets.load("digits", "test")
    model = topo.compile(topology, activation=SETTINGS["activation"], dropout=SETTINGS["dropout"], seed=seed)
    evolver = topo.Evolver(model, topo.rules.SET(SETTINGS["zeta"]), seed=seed)
    config = {"command": "demo", "dataset": "digits", "rule": "set", "epsilon": EPSILON, "density": None,
              "hidden": ",".join(map(str, SIZES[1:-1])), "sizes": SIZES, "backend": "auto",
              "out": str(out), **SETTINGS, "epochs": epochs}
    print(f"\nTraining a SET-MLP on digits for {epochs} epochs (zeta={SETTINGS['zeta']}), run directory {out}")
    trainer = topo.Trainer(model, lr=SETTINGS["lr"], momentum=SETTINGS["momentum"],
                           weight_decay=SETTINGS["weight_decay"], evolver=evolver, epochs=epochs,
                           batch_size=SETTINGS["batch_size"], seed=seed, out_dir=out, run_config=config)
    return trainer.fit(train_data, test_data)


def print_outcome(trainer, out: Path) -> None:
    """Step 3: per-epoch metrics and how much of the topology evolution replaced."""
    m = trainer.metrics_
    print()
    print(m.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    h = trainer.history_
    if h is not None and len(h) > 1:
        steps = len(h) - 1
        born = int(h.frame().query("epoch > 0").births.sum())
        print(f"\n{steps} evolution steps rewired {born // steps} of {h.initial.num_edges} edges each "
              f"({born / steps / h.initial.num_edges:.1%}); final test accuracy {m.test_acc.iloc[-1]:.4f}")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))} to {out}")


def export_timeline(trainer, out: Path) -> None:
    """Step 4: the evolution as a dynamic GEXF 1.3 file (open in Gephi, play the timeline)."""
    import topo

    path = out / "evolution.gexf"
    topo.io.write_gexf_dynamic(trainer.history_, path)
    print(f"wrote {path} (Gephi: File > Open, then Window > Timeline and press play)")


def write_report(out: Path) -> None:
    """Step 5: the self-contained HTML report (degrees, scale-free tests, importance, drift) and its CSVs."""
    # analysis imports topo, never the reverse: import it here, at the edge.
    from analysis.report import build_report

    print(f"wrote {build_report(out, progress=False)}")


def _clear_previous_demo(out: Path) -> None:
    """Re-running the demo replaces its own earlier run; any other run in ``out`` is refused, never touched."""
    from topo.runs import RunDir

    if not (out / RunDir.CONFIG).is_file():
        return
    with RunDir(out).open(resume=True) as run:  # not while another process writes it
        if run.read_config(verify=False).get("command") != "demo":
            raise FileExistsError(f"{str(out)!r} holds a run that is not the demo's; choose another --out")
        run.discard(also=("evolution.gexf", "report.html", "degrees.csv", "scale_free.csv", "importance.csv",
                          "drift.csv"))
