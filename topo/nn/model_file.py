"""Model files: a trained model as one pickle-free ``.safetensors`` file that rebuilds it.

A model file holds the model's ``state_dict`` tensors (for a :class:`SparseMLP`
every sparse layer's ``edge_index`` — int32 when the sizes fit —, ``weight`` and
``bias``, and a dense output layer's) and, in the safetensors header, JSON
metadata:

===============  ==================================================================
key              content
===============  ==================================================================
``format``       ``"topo.model"``
``version``      ``"1"``
``spec``         how to rebuild the module: ``{"kind": "SparseMLP", "sizes", "activation",
                 "dropout", "output_dense", "bias", "backend", "regrow_init"}``,
                 ``{"kind": "SparseDAE", "n_features", "n_hidden", "noise", "dropout",
                 "output", "backend", "regrow_init"}`` or
                 ``{"kind": "Sequential", "modules": [...]}`` (``Linear``, ``SparseLinear``,
                 activations, ``Dropout``: a dense MLP such as ``SparseMLP.to_dense()``)
``config``       optional JSON object: the run's settings (``config.json`` of ``topo train``)
``sha256``       digest of the other metadata and of every tensor (name, dtype, shape, bytes):
                 :func:`load_model` refuses a file whose content no longer matches it
===============  ==================================================================

:func:`save_model` writes it atomically; :func:`load_model` reads it (or a run
directory's ``model.safetensors``) and returns the model in eval mode. Any
other ``nn.Module`` can be saved too; loading it needs the module itself
(``load_model(path, model=my_model)``: sparse layers resize to the file's edges).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..errors import TopologyError, TopologyFormatError

__all__ = ["MODEL_FILE", "save_model", "load_model", "read_model_file", "model_spec"]

#: The model file's name inside a run directory (:data:`topo.runs.MODEL`).
from ..runs.files import MODEL as MODEL_FILE  # noqa: E402  (the run file name lives in topo.runs)

FORMAT, VERSION = "topo.model", "1"
_DIGEST = "sha256"
_META_KEYS = {"format", "version", "class", "spec", "config", _DIGEST}


def _activation_name(module: nn.Module) -> str | None:
    from .activations import AllReLU
    from .mlp import ACTIVATIONS

    if type(module) is AllReLU:
        return f"allrelu:{module.alpha}"  # the slope's sign follows the layer's position on rebuild
    for name, cls in ACTIVATIONS.items():
        if type(module) is cls and repr(module) == repr(cls()):  # default arguments only: rebuildable by name
            return name
    return None


def model_spec(model: nn.Module) -> dict | None:
    """How to rebuild ``model`` from its tensors, or ``None`` if topo cannot (any other module)."""
    from .dropout import Dropout
    from .linear import SparseLinear
    from .mlp import SparseMLP

    if isinstance(model, SparseMLP):
        act = _activation_name(model.activations[0]) if len(model.activations) else "relu"
        if act is None:
            return None
        layers = model.layers
        return {"kind": "SparseMLP", "sizes": list(model.sizes), "activation": act,
                "dropout": float(cast(nn.Dropout, model.dropouts[0]).p) if len(model.dropouts) else 0.0,
                "output_dense": model.output_layer is not None, "bias": layers[0].bias is not None,
                "backend": model.sparse_layers[0].backend if len(model.sparse_layers) else "auto",
                "regrow_init": model.regrow_init if isinstance(model.regrow_init, str) else list(model.regrow_init)}
    from .autoencoder import SparseDAE

    if type(model) is SparseDAE:
        return {"kind": "SparseDAE", "n_features": model.n_features, "n_hidden": model.n_hidden,
                "noise": model.noise, "dropout": float(model.drop.p), "output": model.output,
                "backend": model.encoder.backend,
                "regrow_init": model.regrow_init if isinstance(model.regrow_init, str) else list(model.regrow_init)}
    if type(model) is nn.Sequential:
        mods = []
        for m in model:
            if type(m) is nn.Linear:
                mods.append({"type": "Linear", "in": m.in_features, "out": m.out_features,
                             "bias": m.bias is not None})
            elif isinstance(m, SparseLinear):
                mods.append({"type": "SparseLinear", "in": m.in_features, "out": m.out_features,
                             "bias": m.bias is not None, "backend": m.backend})
            elif type(m) in (nn.Dropout, Dropout):
                mods.append({"type": "Dropout", "p": float(cast(nn.Dropout, m).p)})
            elif _activation_name(m) is not None:
                mods.append({"type": "activation", "name": _activation_name(m),
                             "position": int(getattr(m, "position", 0))})
            else:
                return None
        return {"kind": "Sequential", "modules": mods}
    return None


def save_model(model: nn.Module, path: str | os.PathLike, *, config: dict | None = None) -> None:
    """Write ``model`` (tensors and the spec to rebuild it) to a ``.safetensors`` file, atomically.

    Examples
    --------
    >>> import os, tempfile, torch, topo
    >>> model = topo.compile(topo.erdos_renyi([6, 8, 3], density=0.5, seed=0), seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> topo.save_model(model, path)
    >>> x = torch.randn(4, 6)
    >>> bool(torch.equal(topo.load_model(path)(x), model.eval()(x)))
    True
    """
    from safetensors.torch import save

    from ..utils.atomic import atomic_write

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    spec = model_spec(model)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if name.endswith("edge_index") and t.numel() and int(t.max()) < 2**31 - 1:
            t = t.to(torch.int32)  # half the bytes; read back as the layer's int64
        tensors[name] = t.contiguous().clone()  # safetensors refuses shared or strided storage
    meta = {"format": FORMAT, "version": VERSION, "class": type(model).__name__,
            "spec": json.dumps(spec)}
    if config is not None:
        meta["config"] = json.dumps(config, sort_keys=True, default=str)
    meta[_DIGEST] = _digest(meta, tensors)
    with atomic_write(path, "wb") as f:
        f.write(save(tensors, metadata=meta))


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(metadata, tensors)`` of a topo model file (``spec``/``config`` decoded); bad files raise naming them."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for damaged headers
        raise TopologyFormatError(f"{str(path)!r} is not a readable safetensors model file "
                                  f"({type(err).__name__}: {err})") from None
    if meta.get("format") == FORMAT:  # a foreign file is named as such below, not for its keys
        unknown = sorted(set(meta) - _META_KEYS)
        if unknown:
            raise TopologyFormatError(f"{str(path)!r} has unknown metadata {unknown[:5]} (damaged?)")
        if _DIGEST in meta and meta[_DIGEST] != _digest(meta, tensors):
            raise TopologyFormatError(
                f"{str(path)!r} is damaged: its tensors or metadata differ from what was saved (the "
                f"{_DIGEST} recorded in it, {str(meta[_DIGEST])[:16]}…, does not match)")
    if meta.get("format") != FORMAT:
        raise TopologyFormatError(f"{str(path)!r} holds {meta.get('format') or 'no topo format tag'!r}, "
                                  f"expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise TopologyFormatError(f"{str(path)!r} has model format version {meta.get('version')!r}; "
                                  f"this topo reads version {VERSION}")
    try:
        meta["spec"] = json.loads(meta.get("spec", "null"))
        meta["config"] = json.loads(meta["config"]) if "config" in meta else None
    except ValueError as err:
        raise TopologyFormatError(f"{str(path)!r} has unreadable metadata ({err})") from None
    return meta, tensors


def _digest(meta: dict, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the metadata (but the digest itself) and of every tensor's name, dtype, shape and bytes.

    safetensors has no checksum: without this a flipped byte would load as another weight or setting.
    Files written before it existed carry none and are read unverified.
    """
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != _DIGEST}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _rebuild(spec: dict, tensors: dict) -> nn.Module:
    from ..graph.layer import LayerGraph
    from ..graph.topology import Topology
    from .dropout import Dropout
    from .linear import SparseLinear
    from .mlp import SparseMLP, _activation

    def graph(prefix: str, n_in: int, n_out: int) -> LayerGraph:
        ei = tensors[prefix + "edge_index"].to(torch.int64)
        return LayerGraph(n_in, n_out, ei[0], ei[1])

    if spec["kind"] == "SparseMLP":
        sizes = [int(s) for s in spec["sizes"]]
        n_sparse = len(sizes) - 1 - int(bool(spec["output_dense"]))
        graphs = [graph(f"sparse_layers.{k}.", sizes[k], sizes[k + 1]) for k in range(n_sparse)]
        if spec["output_dense"]:
            n_in, n_out = sizes[-2], sizes[-1]
            dst, src = torch.meshgrid(torch.arange(n_out), torch.arange(n_in), indexing="ij")
            graphs.append(LayerGraph(n_in, n_out, src.reshape(-1), dst.reshape(-1)))
        regrow = spec.get("regrow_init", "zeros")
        return SparseMLP(Topology(graphs), activation=spec["activation"], dropout=spec["dropout"],
                         backend=spec.get("backend", "auto"), output_dense=bool(spec["output_dense"]),
                         bias=bool(spec["bias"]), regrow_init=regrow if isinstance(regrow, str) else tuple(regrow),
                         seed=0)
    if spec["kind"] == "SparseDAE":
        from .autoencoder import SparseDAE

        n, h = int(spec["n_features"]), int(spec["n_hidden"])
        regrow = spec.get("regrow_init", "zeros")
        dae = SparseDAE(n, h, density=min(1.0, 1.0 / min(n, h)), noise=spec["noise"], dropout=spec["dropout"],
                        output=spec["output"], backend=spec.get("backend", "auto"),
                        regrow_init=regrow if isinstance(regrow, str) else tuple(regrow), seed=0)
        for name, (a, b) in (("encoder", (n, h)), ("decoder", (h, n))):  # the saved edges, not the placeholder's
            setattr(dae, name, SparseLinear(a, b, True, layer=graph(f"{name}.", a, b),
                                            backend=spec.get("backend", "auto"), seed=0))
        return dae
    if spec["kind"] == "Sequential":
        mods: list[nn.Module] = []
        for k, m in enumerate(spec["modules"]):
            if m["type"] == "Linear":
                mods.append(nn.Linear(m["in"], m["out"], bias=m["bias"]))
            elif m["type"] == "SparseLinear":
                mods.append(SparseLinear(m["in"], m["out"], m["bias"], layer=graph(f"{k}.", m["in"], m["out"]),
                                         backend=m.get("backend", "auto"), seed=0))
            elif m["type"] == "Dropout":
                mods.append(Dropout(m["p"]))
            else:
                mods.append(_activation(m["name"], int(m.get("position", 0))))
        return nn.Sequential(*mods)
    raise KeyError(f"unknown model kind {spec['kind']!r}")


def load_model(source: str | os.PathLike, *, model: nn.Module | None = None, device=None) -> nn.Module:
    """The model of a run directory (its ``model.safetensors``) or of a model file, in eval mode.

    Parameters
    ----------
    source : path
        A run directory of ``topo train`` / ``Trainer(out_dir=...)`` or a file written by :func:`save_model`.
    model : nn.Module, optional
        Load the tensors into this module instead of rebuilding one (needed for
        models topo cannot describe, e.g. a user's CNN passed through
        :func:`topo.sparsify`); its sparse layers resize to the file's edges.
    device : optional
        Where the returned model lives (default CPU).

    The values are those of the run's last checkpoint, so the returned model
    scores the run's last ``test_acc`` on the same (preprocessed) test data.
    """
    src = Path(source)
    path = src / MODEL_FILE if src.is_dir() else src
    if src.is_dir() and not path.is_file():
        raise FileNotFoundError(f"run directory {str(src)!r} holds no {MODEL_FILE} (runs written by this topo "
                                f"save it at every checkpoint)")
    if src.is_dir():
        from ..runs import RunDir

        RunDir(src).verify(MODEL_FILE)  # bytes changed since the run wrote them: RunFileError naming the file
    meta, tensors = read_model_file(path)
    if model is None:
        spec = meta["spec"]
        if not isinstance(spec, dict):
            raise TopologyError(f"{str(path)!r} holds the state of a {meta.get('class', 'model')!r} that topo cannot "
                                f"rebuild by itself: build that model and pass it, load_model(path, model=...)")
        try:
            model = _rebuild(spec, tensors)
        except (KeyError, TypeError, ValueError) as err:
            raise TopologyFormatError(f"{str(path)!r} has an inconsistent model spec or tensors ({err})") from None
        # The file's dtype, not the default one: a float64 run loads as float64, bit for bit.
        floats = {v.dtype for v in tensors.values() if v.is_floating_point()}
        if len(floats) == 1:
            model.to(floats.pop())
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, TopologyError) as err:
        raise TopologyFormatError(f"{str(path)!r} does not fit the model: {err}") from None
    return model.to(device or "cpu").eval()
