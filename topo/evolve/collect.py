"""Collect what score-based rules read: per sparse layer activations and output gradients over a data sample."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError

__all__ = ["collect_scores", "sample_batches"]

_CHUNK = 1024  # rows per forward pass when sampling from tensors


def sample_batches(data, max_samples: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, object]]:
    """``(x, y)`` batches (``y`` may be ``None``) holding at most ``max_samples`` rows in all.

    ``data`` is a tensor of inputs, a tuple ``(inputs, targets)`` of tensors
    (rows drawn uniformly without replacement with ``generator``), or an
    iterable of batches ``x`` or ``(x, y, ...)`` (the first rows are used).
    """
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple) and 1 <= len(data) <= 2 and all(isinstance(t, torch.Tensor) for t in data):
        n = data[0].shape[0] if data[0].dim() else 0
        if n == 0 or any(t.dim() == 0 or t.shape[0] != n for t in data):
            raise ParameterError(f"data tensors must share a non-empty first dimension, got shapes "
                                 f"{[tuple(t.shape) for t in data]}")
        idx = torch.randperm(n, generator=generator)[:max_samples] if n > max_samples else torch.arange(n)
        for chunk in idx.split(_CHUNK):
            ch = chunk.to(data[0].device)
            yield data[0][ch], (data[1][chunk.to(data[1].device)] if len(data) == 2 else None)
        return
    try:
        batches = iter(data)
    except TypeError:
        raise ParameterTypeError(f"data must be a tensor, an (inputs, targets) tuple or an iterable of batches, "
                                 f"got {type(data).__name__}") from None
    left = max_samples
    for batch in batches:
        x, y = (batch[0], batch[1] if len(batch) > 1 else None) if isinstance(batch, (tuple, list)) else (batch, None)
        if not isinstance(x, torch.Tensor):
            raise ParameterTypeError(f"a batch must hold tensors, got {type(x).__name__}")
        x, y = x[:left], (y[:left] if isinstance(y, torch.Tensor) else y)
        left -= x.shape[0]
        yield x, y
        if left <= 0:
            return


def _post_fns(model: nn.Module, layers: list, activation) -> list:
    """Per sparse layer: how its postsynaptic activity follows from (its output, the next layer's input)."""
    softmax = lambda out, nxt: torch.softmax(out, dim=1)  # noqa: E731
    fns = []
    own = getattr(model, "activations", None)
    weight_layers = getattr(model, "layers", None)
    mlp = activation == "auto" and isinstance(own, nn.ModuleList) and isinstance(weight_layers, list)
    for k, layer in enumerate(layers):
        if mlp:
            last = k == len(weight_layers) - 1
            fns.append(softmax if last else (lambda out, nxt, f=own[k]: f(out)))
        elif k == len(layers) - 1:
            fns.append(softmax)
        elif activation == "auto":
            chained = layers[k + 1].in_features == layer.out_features
            fns.append((lambda out, nxt: nxt) if chained else (lambda out, nxt: torch.relu(out)))
        else:
            fns.append(lambda out, nxt, f=activation: f(out))
    return fns


def _default_loss(out, y):
    return nn.functional.cross_entropy(out, y, reduction="sum")


def collect_scores(model: nn.Module, layers: list, data, needs: set, *, max_samples: int,
                   generator: torch.Generator, activation="auto", loss_fn=None) -> list[dict]:
    """Run ``model`` over a sample of ``data`` in eval mode and gather, per layer in ``layers``,
    ``{"activations": (pre, post)}`` and/or ``{"gradients": (x, dY)}`` as ``needs`` asks.

    Parameter gradients are left untouched (``torch.autograd.grad``, not ``backward``).
    """
    want_grad = "gradients" in needs
    want_act = "activations" in needs
    loss_fn = loss_fn or _default_loss
    ref = layers[0].weight
    n = len(layers)
    inputs: list[list] = [[] for _ in range(n)]
    outputs: list[list] = [[] for _ in range(n)]
    grads: list[list] = [[] for _ in range(n)]
    live: list = [None] * n

    def hook(k):
        def fn(module, args, out):
            inputs[k].append(args[0].detach().reshape(-1, module.in_features))
            live[k] = out
            if want_act:
                outputs[k].append(out.detach().reshape(-1, module.out_features))
        return fn

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(layers)]
    was_training = model.training
    model.eval()  # no dropout: activations of the network as it predicts, and no global RNG use
    try:
        for x, y in sample_batches(data, max_samples, generator):
            x = x.to(ref.device)
            if x.is_floating_point():
                x = x.to(ref.dtype)
            live[:] = [None] * n
            if not want_grad:
                with torch.no_grad():
                    model(x)
            else:
                if not isinstance(y, torch.Tensor):
                    raise ParameterError("gradient scores need targets: pass data as (inputs, targets) "
                                         "or batches of (x, y)")
                with torch.enable_grad():
                    out = model(x)
                    missing = [k for k in range(n) if live[k] is None]
                    if missing:
                        raise ParameterError(f"sparse layers {missing} were not used by the model's forward")
                    dys = torch.autograd.grad(loss_fn(out, y.to(out.device)), live, allow_unused=True)
                for k, (layer, dy) in enumerate(zip(layers, dys)):
                    grads[k].append(torch.zeros_like(live[k]).reshape(-1, layer.out_features) if dy is None
                                    else dy.detach().reshape(-1, layer.out_features))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not inputs[0]:
        raise ParameterError("data yielded no samples")
    missing = [k for k in range(n) if not inputs[k]]
    if missing:
        raise ParameterError(f"sparse layers {missing} were not used by the model's forward")
    pre = [torch.cat(parts) for parts in inputs]
    result: list[dict] = [{} for _ in range(n)]
    if want_act:
        post_fns = _post_fns(model, layers, activation)
        with torch.no_grad():
            for k in range(n):
                nxt = pre[k + 1] if k + 1 < n else None
                result[k]["activations"] = (pre[k], post_fns[k](torch.cat(outputs[k]), nxt))
    if want_grad:
        for k in range(n):
            result[k]["gradients"] = (pre[k], torch.cat(grads[k]))
    return result
