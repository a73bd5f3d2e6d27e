"""``topo predict``: labels and class probabilities of a trained run's model for a dataset split or an array."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="predict labels and class probabilities with a trained run's model",
        description="Load RUN's model (its model file, see topo.load_model) and write one CSV row per "
                    "input: row, label (the predicted class), prob_0..prob_{C-1} (softmax), and target when "
                    "the inputs come from a dataset. Inputs are preprocessed as the run was "
                    "(--standardize: with the statistics of the run's training split).")
    p.add_argument("run", metavar="RUN", help="a run directory (or a model .safetensors file)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help="a topo dataset (e.g. digits, mnist); see --split")
    src.add_argument("--input", metavar="X.npy", help="a float array [rows, features] (.npy, no pickle)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="split of --dataset")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="CSV to write (replaced atomically)")
    p.add_argument("--batch-size", type=int, default=4096, help="rows per forward pass")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import TopologyError

    try:
        n, acc = predict(args)
    except (TopologyError, OSError, ValueError, TypeError) as err:
        print(f"topo predict: error: {err}", file=sys.stderr)
        return 2
    extra = "" if acc is None else f", accuracy {acc:.4f}"
    print(f"wrote {args.out} ({n} rows{extra})")
    return 0


def _config(run: Path, meta_config) -> dict:
    from ..runs import files as _runs

    if run.is_dir() and (run / _runs.CONFIG).is_file():
        return _runs.read_json(run / _runs.CONFIG)
    return meta_config or {}


def _read_input(path: str, n_features: int):
    import numpy as np
    import torch

    from ..errors import ParameterError

    try:
        X = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"--input {path!r} does not exist") from None
    except (ValueError, OSError) as err:
        raise ParameterError(f"--input {path!r} is not a readable .npy array (no pickles): {err}") from None
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != n_features:
        raise ParameterError(f"--input {path!r} has shape {getattr(X, 'shape', None)}; the model takes "
                             f"[rows, {n_features}]")
    if X.dtype.kind not in "fiub":
        raise ParameterError(f"--input {path!r} holds {X.dtype} values, expected numbers")
    if X.shape[0] == 0:
        raise ParameterError(f"--input {path!r} has no rows")
    X = torch.from_numpy(X.astype(np.float32))
    if not bool(torch.isfinite(X).all()):
        raise ParameterError(f"--input {path!r} holds NaN or infinite values")
    return X


def predict(args):
    """Write the predictions CSV; return (rows, accuracy or None)."""
    import numpy as np
    import pandas as pd
    import torch

    from .. import datasets
    from ..errors import ParameterError
    from ..nn.model_file import MODEL_FILE, load_model, read_model_file
    from ..utils.atomic import atomic_write

    if args.batch_size < 1:
        raise ParameterError(f"--batch-size must be a positive integer, got {args.batch_size}")
    run = Path(args.run)
    path = run / MODEL_FILE if run.is_dir() else run
    model = load_model(run)
    meta, _ = read_model_file(path)
    config = _config(run, meta.get("config"))
    sizes = (meta.get("spec") or {}).get("sizes") or config.get("sizes")
    if not sizes:
        raise ParameterError(f"{str(path)!r} does not say the model's input width (no sizes)")
    target = None
    if args.dataset is not None:
        X, target = datasets.load(args.dataset, args.split)
        if X.shape[1] != sizes[0]:
            raise ParameterError(f"dataset {args.dataset!r} has {X.shape[1]} features; the model takes {sizes[0]}")
    else:
        X = _read_input(args.input, int(sizes[0]))
    if config.get("standardize"):
        if not config.get("dataset"):
            raise ParameterError("the run standardized its inputs but its config names no dataset")
        train_X = datasets.load(config["dataset"], "train")[0]
        X = datasets.standardize(train_X, X)[1]
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(xb.to(dtype)), dim=1) for xb in X.split(args.batch_size)])
    labels = probs.argmax(1)
    frame = pd.DataFrame({"row": np.arange(len(labels)), "label": labels.numpy()})
    if target is not None:
        frame["target"] = target.numpy()
    for c in range(probs.shape[1]):
        frame[f"prob_{c}"] = probs[:, c].double().numpy()
    with atomic_write(args.out, "w") as f:
        frame.to_csv(f, index=False, float_format="%.8g")
    acc = None if target is None else float((labels == target).double().mean())
    return len(frame), acc
