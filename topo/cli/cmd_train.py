"""``topo train``: train a SET-style sparse MLP (or its dense/static baselines) and write a run directory."""

from __future__ import annotations

import argparse
import math

#: Defaults of a new run; ``None`` in the parser means "not given", so --resume can tell
#: an explicit setting from a default.
DEFAULTS = {"hidden": "1000,1000,1000", "epsilon": None, "density": None, "rule": "set", "zeta": None,
            "epochs": 10, "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 2e-4,
            "dropout": 0.3, "activation": "auto", "optimizer": "sgd", "seed": 0, "device": "cpu",
            "backend": "auto", "standardize": True, "init": "auto", "regrow_init": "auto",
            "model": "mlp", "cd_k": 1, "persistent": False, "visible": "bernoulli",
            "task": "classify", "loss": None, "noise": 0.0, "update_every": None, "update_until": None,
            "zeta_decay": None, "mode": "exact", "patience": 40, "max_samples": 4096,
            "val_fraction": 0.0, "patience_epochs": None}
DEFAULTS["lr_density_power"] = "auto"  # resolved per rule (factory.RECIPES); a number in config.json
DEFAULTS["history_weights"] = "all"  # which updates history.npz stores weights of (topo.graph.history)
# What runs written before the "auto" recipes (and without these keys in config.json) trained with.
_LEGACY = {"activation": "relu", "init": "kaiming_uniform", "regrow_init": "zeros", "standardize": False,
           "lr_density_power": 0.0}
#: The evolution schedule a rule means when no flag says otherwise: RigL's paper (ΔT = 100 steps,
#: T_end = 0.75, cosine decay of α = 0.3); SET and the others: every epoch but the last, constant ζ.
SCHEDULES = {"rigl": {"update_every": "100", "update_until": 0.75, "zeta_decay": "cosine"}}
_SCHEDULE = {"update_every": "epoch", "update_until": 1.0, "zeta_decay": "constant"}
# Settings a resumed run may change: more epochs extend it, the device does not alter the run.
_RESUMABLE = ("epochs", "device")


def add_parser(sub) -> None:
    from ..nn.activations import ACTIVATIONS
    from ..nn.backends import backend_names
    from .factory import rule_help

    p = sub.add_parser(
        "train", help="train a sparse MLP on a dataset, evolving its topology, into a run directory",
        description="Train an MLP whose topology starts Erdős–Rényi and evolves by a rule after every epoch "
                    "but the last. Writes the run directory DIR (topo.runs.RunDir: " + ", ".join(_run_files()) +
                    ", every epoch, verified by the sha256s of its manifest; one process at a time holds its "
                    "lock); --resume continues a run bit-identically.")
    p.add_argument("--dataset", help="digits, mnist, fashion-mnist, coil20, synthetic[:k=v,...], mat:PATH")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="z-score every feature with the training split's mean and std (SET's reference "
                        "preprocessing; default on for --model mlp, off for --model rbm; --no-standardize "
                        "keeps the features as loaded, in [0, 1])")
    p.add_argument("--model", choices=("mlp", "rbm", "dae"),
                   help="mlp: a classifier (default); rbm: a SET-RBM (topo.nn.SparseRBM) trained by contrastive "
                        "divergence on the features alone, --hidden N hidden units, ε = 11 unless given; dae: "
                        "QuickSelection's sparse denoising autoencoder (topo.nn.SparseDAE: sigmoid hidden layer, "
                        "input noise 0.2, dropout 0.2, N(0, 0.1²) initial values, ε = 13 unless given) trained "
                        "to reconstruct its clean input (--task reconstruct)")
    p.add_argument("--cd-k", type=int, help="--model rbm: Gibbs steps of CD-k (default 1)")
    p.add_argument("--persistent", action="store_true", default=None, help="--model rbm: persistent CD")
    p.add_argument("--visible", choices=("bernoulli", "gaussian"),
                   help="--model rbm: visible units (default bernoulli; gaussian wants --standardize)")
    p.add_argument("--hidden", help="hidden layer sizes, comma separated (default 1000,1000,1000; "
                                    "--model rbm: one size)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--epsilon", type=float, help="SET's ε: layer density ε(n_in+n_out)/(n_in·n_out) "
                                                    "(default 20 unless --density)")
    size.add_argument("--density", type=float, help="density of every layer, in (0, 1]")
    p.add_argument("--rule", help=rule_help())
    p.add_argument("--zeta", type=float, help="fraction of edges rewired per epoch, in [0, 1] "
                                              "(default: the rule's, 0.3 for SET)")
    p.add_argument("--epochs", type=int, help="training epochs (default 10); with --resume, more extends the run")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    p.add_argument("--lr-density-power", type=_power, metavar="P",
                   help="each sparse layer's weights learn at lr·density^-P (topo.nn.param_groups; biases and "
                        "dense layers at lr): 0 is plain lr, 1 moves a sparse neuron's pre-activation per step as "
                        "far as a dense one's; default auto: 0.5 for set/static (SET's ~4%%-dense layers at 5× "
                        "lr), 0 otherwise")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default 2e-4): torch's L2 penalty for sgd "
                                                      "and adam; for sgdw the fraction taken off every value "
                                                      "per step")
    p.add_argument("--optimizer", choices=("sgd", "sgdw", "adam"),
                   help="sgd (default), sgdw (SGD with SET's decoupled decay w -= wd*w each step, as SET's "
                        "code; topo.train.SGDW) or adam")
    p.add_argument("--dropout", type=float, help="dropout after hidden activations (default 0.3)")
    p.add_argument("--activation", help=f"{', '.join(ACTIVATIONS.names())}; allrelu[:ALPHA] is SET's alternating "
                                        "leaky ReLU (Curci et al. 2021; α 0.6 by default); default auto: allrelu "
                                        "for set/static, relu otherwise")
    p.add_argument("--seed", type=int, help="seed of topology, initial weights, shuffling, dropout, evolution "
                                            "(default 0)")
    p.add_argument("--init", help="initial weights of the sparse layers (topo.nn.init; the dense MLP keeps "
                                  "nn.Linear's): auto (default: kaiming_uniform_dense for set/static, as SET's "
                                  "code; kaiming_uniform otherwise), kaiming_uniform (effective fan-in), "
                                  "xavier_uniform, kaiming_uniform_dense, xavier_uniform_dense (the dense layer's "
                                  "fans, as SET's Keras and CTRE's code), normal:SIGMA")
    p.add_argument("--regrow-init", help="weights of regrown edges: auto (default: the initial scheme for set/static, "
                                         "as SET's code; zeros otherwise, as RigL), zeros, or any --init scheme")
    p.add_argument("--history-weights", metavar="{all,every:K,none}",
                   help="weights stored in the run's history: after every update (default all), every K-th, or none "
                        "(births and deaths are always kept); add ':float16' for half precision, e.g. every:5:float16")
    p.add_argument("--update-every", metavar="{epoch|N}",
                   help="evolve after every epoch (default; SET) or every N optimizer steps (--rule rigl: 100)")
    p.add_argument("--update-until", type=float, metavar="F",
                   help="no evolution from fraction F of the run on, in (0, 1] (default 1: all but the last "
                        "update position; --rule rigl: 0.75)")
    p.add_argument("--zeta-decay", choices=("constant", "cosine", "linear"),
                   help="decay of ζ over the updates until --update-until (default constant; --rule rigl: cosine)")
    p.add_argument("--mode", help="cosine/gradient growth: exact (default) or an approximate mode of "
                                  "topo.rules (approx, approx-uniform, ...)")
    p.add_argument("--patience", type=int, help="CTRE-seq: updates without a better val_acc before it switches "
                                               "to random growth (default 40)")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="hold out F of the training rows as a validation split (stratified, seeded; default 0): "
                        "val_loss/val_acc in the metrics table, and the only data monitors read (--rule ctre-seq and "
                        "--patience-epochs need it; the test set is only reported)")
    p.add_argument("--patience-epochs", type=int, metavar="N",
                   help="early stopping: end the run once val_loss has not improved for N epochs "
                        "(needs --val-fraction)")
    p.add_argument("--max-samples", type=int, help="samples per update for cosine/gradient scores (default 4096)")
    p.add_argument("--task", choices=("classify", "reconstruct", "regress"),
                   help="classify (the labels; default), reconstruct (an autoencoder: output = input, "
                        "sizes FEATURES-HIDDEN-FEATURES) or regress (MSE onto the one-hot labels); accuracy "
                        "columns are NaN unless classifying")
    p.add_argument("--loss", choices=("cross_entropy", "mse", "bce_logits", "l1", "smooth_l1"),
                   help="training loss (default: cross_entropy to classify, mse otherwise)")
    p.add_argument("--noise", type=float,
                   help="std of Gaussian noise added to each training batch's inputs (a denoising "
                        "autoencoder with --task reconstruct; default 0)")
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--backend", help=f"sparse layer backend: {', '.join(backend_names())} (default auto)")
    p.add_argument("--out", required=True, help="run directory (refused if it already holds a run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--force", action="store_true",
                   help="train even where the pre-flight checks refuse: a network the memory estimate says does "
                        "not fit, or a layer with fewer edges than output neurons")
    p.add_argument("--nproc", type=int,
                   help="data-parallel processes spawned on this machine (default 1); each takes a share of "
                        "every --batch-size batch. Under torchrun the world size comes from torchrun instead")
    p.add_argument("--dist-backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="torch.distributed backend with --nproc > 1 or torchrun: gloo (CPU), nccl (one GPU per "
                        "process); auto picks nccl for a cuda --device (default auto)")
    p.set_defaults(func=run)


def _run_files() -> tuple:
    from ..runs import RunDir

    return (RunDir.CONFIG, RunDir.METRICS, RunDir.TOPOLOGY, RunDir.HISTORY, RunDir.CHECKPOINT)


def _power(text: str):
    """``--lr-density-power``: ``auto`` or a non-negative finite number."""
    import math

    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative finite number, got {text!r}")
    return value


def _settings(args) -> dict:
    """The run's settings: defaults + explicit arguments, or config.json + allowed changes on --resume."""
    from ..errors import ParameterError
    from ..runs import RunDir

    given = {k: getattr(args, k, None) for k in (*DEFAULTS, "dataset") if getattr(args, k, None) is not None}
    if not args.resume:
        if "dataset" not in given:
            raise ParameterError("--dataset is required for a new run (e.g. --dataset fashion-mnist)")
        from .factory import resolve_auto

        s = resolve_auto({**DEFAULTS, **given})
        if s["epsilon"] is None and s["density"] is None:
            # The SET paper's RBM and MLP settings, QuickSelection's DAE.
            s["epsilon"] = {"rbm": 11.0, "dae": 13.0}.get(s["model"], 20.0)
        if s["model"] == "dae":
            _dae_settings(s, given)
        if s["model"] == "rbm" and "standardize" not in given:
            s["standardize"] = False  # Bernoulli visible units model [0, 1] pixels
        rule_schedule = SCHEDULES.get(str(s["rule"]).strip().lower(), _SCHEDULE)
        for key in _SCHEDULE:  # the rule's schedule, unless a flag says otherwise; recorded in config.json
            if s[key] is None:
                s[key] = rule_schedule[key]
        return s
    run = RunDir(args.out).check(resume=True)
    path = run / RunDir.CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume {args.out!r}: it has no {RunDir.CONFIG}")
    saved = run.read_config(verify=False)
    s = {k: saved.get(k, _LEGACY.get(k, v)) for k, v in {**DEFAULTS, **_SCHEDULE, "dataset": None}.items()}
    _check_saved(s, path)  # a wrong type is named before the manifest says the file was changed
    run.verify(RunDir.CONFIG)
    for key, value in given.items():
        if key in _RESUMABLE:
            s[key] = value
        elif value != s.get(key) and not (key == "hidden" and _same_hidden(value, s.get(key))):
            raise ParameterError(f"--{key.replace('_', '-')} {value!r} differs from the run's {s.get(key)!r} "
                                 f"in {str(path)!r}; a resumed run keeps its settings (only "
                                 f"{', '.join('--' + k for k in _RESUMABLE)} may change)")
    return s


#: QuickSelection's DAE (Atashgahi et al. 2022; topo.nn.SparseDAE's defaults), where no flag says otherwise.
_DAE = {"noise": 0.2, "dropout": 0.2, "init": "normal:0.1", "regrow_init": "zeros", "task": "reconstruct",
        "lr_density_power": 0.0}


def _dae_settings(s: dict, given: dict) -> None:
    from ..errors import ParameterError

    for key, value in _DAE.items():
        if key not in given:
            s[key] = value
    if s["task"] != "reconstruct":
        raise ParameterError(f"--model dae reconstructs its input: --task {s['task']} does not apply "
                             "(leave --task out or give --task reconstruct)")


def _check_saved(s: dict, path) -> None:
    """A resumed run's settings from config.json must have the types a new run's have."""
    from ..runs import RunFileError

    for key, value in s.items():
        default = DEFAULTS.get(key, "")
        if key in ("loss", "update_every", "zeta_decay"):  # None: the task's / rule's default
            ok, want = value is None or isinstance(value, str), "a string or null"
        elif key == "patience_epochs":
            ok, want = value is None or (isinstance(value, int) and not isinstance(value, bool)), "an integer or null"
        elif key in ("epsilon", "density", "zeta", "update_until", "lr_density_power"):
            ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            want = "a number or null"
        elif isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                (isinstance(value, int) or not isinstance(default, int))
            want = "an integer" if isinstance(default, int) else "a number"
        else:
            ok, want = isinstance(value, str), "a string"
        if not ok:
            raise RunFileError(f"cannot resume: {str(path)!r} has {key!r}: {value!r}, expected {want}", str(path))


def _same_hidden(a, b) -> bool:
    from .factory import parse_hidden

    try:
        return parse_hidden(a) == parse_hidden(b)
    except ValueError:
        return False


def run(args) -> int:
    """``topo train``: one process, ``--nproc`` spawned ranks, or one rank of a torchrun job.

    A new run that fails before its first checkpoint leaves nothing behind (:func:`preflight.new_run_guard`).
    """
    from .preflight import new_run_guard

    with new_run_guard(args.out, args.resume):
        return _run(args)


def _run(args) -> int:
    from .. import distributed as D
    from ..errors import ParameterError

    nproc = getattr(args, "nproc", None)
    backend = getattr(args, "dist_backend", "auto")
    if backend != "auto":
        D.resolve_backend(backend)  # an explicit backend this machine lacks (nccl without GPUs) fails now
    if D.is_torchrun():
        world = D.env_world_size()
        if nproc not in (None, world):
            raise ParameterError(f"--nproc {nproc} conflicts with torchrun's WORLD_SIZE={world}; under torchrun "
                                 f"leave --nproc out (torchrun's --nproc-per-node sets the processes)")
        if world > 1:
            return _as_rank(args, backend)
        return _train(args)
    if nproc is not None:
        D.check_nproc(nproc, "nccl" if backend == "nccl" else "gloo")
    if nproc is None or nproc == 1:
        return _train(args)
    s = _settings(args)  # bad settings fail here, before any process starts
    device = s["device"]
    backend = D.resolve_backend(backend, device)
    D.check_nproc(nproc, backend)
    if backend == "gloo" and str(device).startswith("cuda"):
        raise ParameterError("--dist-backend gloo with a cuda --device is not supported; use nccl")
    _prepare(args, s, nproc)
    options = {k: v for k, v in vars(args).items() if k not in ("func", "nproc")}
    codes = D.launch(nproc, _rank_main, options, backend=backend)
    return codes[0]


def _prepare(args, s, nproc: int) -> None:
    """What must happen once before the ranks start: the pre-flight checks and dataset downloads."""
    from .. import datasets
    from .factory import parse_hidden

    info = datasets.info(s["dataset"])
    _preflight(args, s, _sizes(info, parse_hidden(s["hidden"]), s["task"]), nproc, info.n_train)
    for split in ("train", "test"):
        datasets.load(s["dataset"], split)  # fetches and caches once, not once per rank


def _rank_main(options: dict) -> int:
    """Entry point of a rank spawned by ``--nproc`` (its process group is already initialised)."""
    import argparse

    return _train(argparse.Namespace(**options, nproc=None))


def _as_rank(args, backend: str) -> int:
    """One rank of a torchrun job: join the group, train, leave."""
    from .. import distributed as D

    device = _settings(args)["device"]
    D.init_distributed(backend, device=device)
    try:
        if not args.resume:
            from ..runs import RunDir

            # Rank 0 alone creates the directory; the others must not see a run there yet.
            D.agree(RunDir(args.out).check, False, what="checking the run directory", ranks="main")
        return _train(args)
    finally:
        D.shutdown()


def _train(args) -> int:
    import torch

    from .. import datasets
    from ..train import Trainer
    from .factory import build_evolver, build_model, build_schedule, check_rule, parse_hidden

    s = _settings(args)
    if isinstance(s["epochs"], int) and s["epochs"] < 1:
        from ..errors import ParameterError
        raise ParameterError(f"--epochs must be a positive integer, got {s['epochs']}")
    if s["model"] == "rbm":
        from ._train_rbm import train_rbm

        return train_rbm(args, s)
    hidden = parse_hidden(s["hidden"])
    if s["model"] == "dae" and len(hidden) != 1:
        from ..errors import ParameterError

        raise ParameterError(f"--model dae has one hidden layer: give --hidden N, got {s['hidden']!r}")
    rule = check_rule(s["rule"], s["zeta"], mode=s["mode"], patience=s["patience"])  # before any work
    schedule = build_schedule(s["update_every"], s["update_until"], s["zeta_decay"])
    from ..nn.init import check_init
    for spec in (s["init"], s["regrow_init"]):
        check_init(spec)
    from ..graph.history import parse_history_weights
    history_weights = parse_history_weights(s["history_weights"])
    info = datasets.info(s["dataset"])
    main = _is_main()
    if main:
        # Fail before loading data and creating anything (the Trainer creates the run directory, locked).
        _preflight(args, s, _sizes(info, hidden, s["task"]), 1 if getattr(args, "nproc", None) is None
                   else args.nproc, info.n_train)
    train, test = datasets.load(s["dataset"], "train"), datasets.load(s["dataset"], "test")
    if s["standardize"]:
        xs = datasets.standardize(train[0], test[0])
        train, test = (xs[0], train[1]), (xs[1], test[1])
    task = s["task"]
    if task == "regress":  # the datasets hold classes: regress their one-hot vectors
        train, test = (train[0], _one_hot(train[1], info.n_classes)), (test[0], _one_hot(test[1], info.n_classes))
    sizes = _sizes(info, hidden, task)
    if s["model"] == "dae":
        from .factory import build_dae

        model = build_dae(sizes[0], hidden[0], s["rule"], epsilon=s["epsilon"], density=s["density"],
                          noise=s["noise"], dropout=s["dropout"], output="linear" if s["standardize"] else "sigmoid",
                          backend=s["backend"], seed=s["seed"], init=s["init"], regrow_init=s["regrow_init"])
    else:
        model = build_model(sizes, s["rule"], epsilon=s["epsilon"], density=s["density"],
                            activation=s["activation"], dropout=s["dropout"], backend=s["backend"], seed=s["seed"],
                            init=s["init"], regrow_init=s["regrow_init"])
    evolver = None if rule is None else build_evolver(model, rule, seed=s["seed"], schedule=schedule,
                                                      max_samples=s["max_samples"])
    if evolver is not None:
        evolver.history_weights = history_weights
    config = {**s, "hidden": ",".join(map(str, hidden)), "sizes": sizes, "dataset": info.name,
              "rule": s["rule"], "zeta": None if rule is None else rule.zeta, "command": "train",
              "out": str(args.out)}
    trainer = Trainer(model, optimizer=s["optimizer"], lr=s["lr"], momentum=s["momentum"],
                      lr_density_power=s["lr_density_power"], weight_decay=s["weight_decay"], evolver=evolver,
                      epochs=s["epochs"],
                      batch_size=s["batch_size"], seed=s["seed"], device=torch.device(s["device"]),
                      out_dir=args.out, resume=args.resume, progress=not args.quiet and main, run_config=config,
                      task=task, loss=s["loss"], val_fraction=s["val_fraction"],
                      noise=0.0 if s["model"] == "dae" else s["noise"],  # a SparseDAE adds its own input noise
                      patience_epochs=s["patience_epochs"])
    trainer.fit(train, test)
    m = trainer.metrics_
    if len(m) and main:
        last = m.iloc[-1]
        score = f"test acc {last.test_acc:.4f}" if task == "classify" else f"test loss {last.test_loss:.4g}"
        print(f"{info.name} {s['rule']} {'-'.join(map(str, sizes))}: epoch {int(last.epoch)}, "
              f"{score}, {int(last.num_edges)} edges; run directory {args.out}")
    return 0


def _preflight(args, s: dict, sizes: list, nproc: int, n_train: int | None = None) -> None:
    """Every check that needs no data and writes nothing: --out, --device, --backend, memory, edges."""
    from ..errors import ParameterError
    from ..graph.generators import _layer_densities
    from ..nn.backends import check_backend
    from . import preflight

    preflight.check_out_dir(args.out, args.resume)
    _check_validation(s)
    device = preflight.check_device(s["device"])
    batch, dropout = s["batch_size"], s["dropout"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ParameterError(f"batch_size (--batch-size) must be a positive integer, got {batch!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ParameterError(f"--dropout must be in [0, 1), got {dropout!r}")
    if s["rule"].strip().lower() != "dense":
        check_backend(s["backend"])
        _layer_densities(sizes, s["epsilon"], s["density"])  # a bad --epsilon/--density names itself here
    preflight.check_network(sizes, s["rule"], s["epsilon"], s["density"], batch=batch, dropout=dropout,
                            optimizer=s["optimizer"], backend=s["backend"], device=device,
                            nproc=max(1, nproc or 1), force=getattr(args, "force", False) or args.resume,
                            history_weights=s.get("history_weights", "all"), history_steps=_updates(s, n_train))


def _updates(s: dict, n_train: int | None) -> int:
    """Evolution steps the run's History holds at its end (it keeps every step's births and deaths):
    one per epoch but the last, or with ``--update-every N`` one per N optimizer steps until
    ``--update-until``; at least one."""
    epochs, every = s.get("epochs"), str(s.get("update_every") or "epoch").strip().lower()
    if not isinstance(epochs, int):
        return 1
    if every == "epoch":
        return max(1, epochs - 1)
    batch, until = s.get("batch_size"), s.get("update_until") or 1.0
    if not (every.isdigit() and int(every) > 0 and n_train and isinstance(batch, int) and batch > 0):
        return 1
    rows = n_train * (1.0 - float(s.get("val_fraction") or 0.0))
    steps = epochs * math.ceil(rows / batch)
    return max(1, int(float(until) * steps) // int(every))


def _check_validation(s: dict) -> None:
    """--val-fraction / --patience-epochs, and the rules whose monitors need a validation split."""
    from ..errors import ParameterError
    from ..train.validation import check_patience, check_val_fraction, monitored_by
    from .factory import check_rule

    try:
        fraction, patience = check_val_fraction(s["val_fraction"]), check_patience(s["patience_epochs"])
    except ParameterError as err:
        raise ParameterError(f"--{str(err).replace('_', '-')}") from None
    if fraction > 0:
        return
    rule = check_rule(s["rule"], s["zeta"], mode=s["mode"], patience=s["patience"])
    watched = None if rule is None else monitored_by(rule)
    if watched is not None:
        raise ParameterError(f"--rule {s['rule']} watches {watched} on a validation split (never the test set): "
                             "give --val-fraction F, e.g. --val-fraction 0.1")
    if patience is not None:
        raise ParameterError(f"--patience-epochs {patience} stops on val_loss: give --val-fraction F, "
                             "e.g. --val-fraction 0.1")


def _sizes(info, hidden: list, task: str) -> list:
    """Layer sizes: an autoencoder's output is its input."""
    return [info.n_features, *hidden, info.n_features if task == "reconstruct" else info.n_classes]


def _one_hot(y, n: int):
    import numpy as np

    return np.eye(n, dtype=np.float32)[np.asarray(y)]


def _is_main() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
