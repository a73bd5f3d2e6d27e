"""``topo train --model rbm``: a SET-RBM trained by contrastive divergence into a run directory."""

from __future__ import annotations


def train_rbm(args, s: dict) -> int:
    """Build a :class:`topo.nn.SparseRBM` from the run settings ``s`` and fit it with :class:`topo.train.RBMTrainer`."""
    import torch
    import torch.distributed as dist

    from .. import datasets
    from ..errors import ParameterError
    from ..nn import SparseRBM
    from ..runs import RunDir
    from ..train import RBMTrainer
    from .factory import build_evolver, check_rule, parse_hidden

    if dist.is_available() and dist.is_initialized():
        raise ParameterError("--model rbm trains in one process; leave out --nproc and torchrun")
    hidden = parse_hidden(s["hidden"])
    if len(hidden) != 1:
        raise ParameterError(f"--model rbm has one hidden layer: give --hidden N, got {s['hidden']!r}")
    if isinstance(s["cd_k"], bool) or not isinstance(s["cd_k"], int) or s["cd_k"] < 1:
        raise ParameterError(f"--cd-k must be a positive integer, got {s['cd_k']!r}")
    rule = check_rule(s["rule"], s["zeta"])
    info = datasets.info(s["dataset"])
    if not args.resume:
        RunDir(args.out).check(resume=False)  # fail before loading data
    train, test = datasets.load(s["dataset"], "train")[0], datasets.load(s["dataset"], "test")[0]
    if s["standardize"]:
        train, test = datasets.standardize(train, test)
    density = 1.0 if rule is None else s["density"]  # rule "dense": the fully connected RBM
    rbm = SparseRBM(info.n_features, hidden[0], visible=s["visible"], epsilon=None if density else s["epsilon"],
                    density=density, backend="dense" if rule is None else s["backend"], seed=s["seed"])
    evolver = None if rule is None or s["rule"] == "static" else build_evolver(rbm, rule, seed=s["seed"])
    sizes = [info.n_features, hidden[0]]
    config = {**s, "hidden": str(hidden[0]), "sizes": sizes, "dataset": info.name, "rule": s["rule"],
              "zeta": None if rule is None else rule.zeta, "command": "train", "out": str(args.out)}
    trainer = RBMTrainer(rbm, k=s["cd_k"], persistent=bool(s["persistent"]), lr=s["lr"], momentum=s["momentum"],
                         weight_decay=s["weight_decay"], evolver=evolver, epochs=s["epochs"],
                         batch_size=s["batch_size"], seed=s["seed"], device=torch.device(s["device"]),
                         out_dir=args.out, resume=args.resume, progress=not args.quiet, run_config=config)
    trainer.fit(train, test)
    last = trainer.metrics_.iloc[-1]
    print(f"{info.name} rbm {s['rule']} {sizes[0]}-{sizes[1]}: epoch {int(last.epoch)}, test reconstruction error "
          f"{last.test_loss:.4f}, pseudo-likelihood {last.pseudo_likelihood:.2f} nats, {int(last.num_edges)} edges; "
          f"run directory {args.out}")
    return 0
