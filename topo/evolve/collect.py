"""Collect what score-based rules read: per sparse layer activations and output gradients over a data sample.

Any model works: forward hooks on the chosen :class:`~topo.nn.SparseLinear`
layers record their inputs and outputs, and ``torch.autograd.grad`` on those
outputs gives the output gradients (parameter ``.grad`` is never touched).

Two ways to gather them:

* a sample (``max_samples=N``): up to ``N`` rows are kept per layer and the
  rules score pairs from them (:class:`~topo.rules.scores.PairScores`);
* every row, streamed (``max_samples=None``): chunk after chunk, each layer
  accumulates the ``n_in × n_out`` inner products (float64) and the column
  norms, and the chunk is dropped. The scores are exactly those of all rows
  at once (CTRE's code computes its cosines over the training data it sees),
  with memory ``O(chunk · width + n_in · n_out)`` instead of ``O(rows · width)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError

__all__ = ["collect_scores", "sample_batches", "StreamedScores"]

_CHUNK = 1024  # rows per forward pass when sampling from tensors


def sample_batches(data, max_samples: int | None, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, object]]:
    """``(x, y)`` batches (``y`` may be ``None``) holding at most ``max_samples`` rows in all.

    ``data`` is a tensor of inputs, a tuple ``(inputs, targets)`` of tensors
    (rows drawn uniformly without replacement with ``generator``), or an
    iterable of batches ``x`` or ``(x, y, ...)`` (the first rows are used).
    ``max_samples=None`` yields every row (tensors: in order, no draw).
    """
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple) and 1 <= len(data) <= 2 and all(isinstance(t, torch.Tensor) for t in data):
        n = data[0].shape[0] if data[0].dim() else 0
        if n == 0 or any(t.dim() == 0 or t.shape[0] != n for t in data):
            raise ParameterError(f"data tensors must share a non-empty first dimension, got shapes "
                                 f"{[tuple(t.shape) for t in data]}")
        if max_samples is not None and n > max_samples:
            idx = torch.randperm(n, generator=generator)[:max_samples]
        else:
            idx = torch.arange(n)
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
        if left is not None:
            x, y = x[:left], (y[:left] if isinstance(y, torch.Tensor) else y)
            left -= x.shape[0]
        yield x, y
        if left is not None and left <= 0:
            return


class StreamedScores:
    """Exact pair scores over a stream of sample chunks, in memory independent of the number of rows.

    Accumulates ``C = Σ aᵀb`` (``n_in × n_out``, float64) and the squared column
    norms of ``a`` and ``b``; :meth:`cosine` and :meth:`gradient` then give a
    :class:`~topo.rules.scores.PairScores` whose pair scores equal those of
    :func:`~topo.rules.scores.cosine_scores` / :func:`~topo.rules.scores.gradient_scores`
    on all rows stacked (up to float rounding). The returned scores factor ``C``
    through an identity on the narrower side, so ranking costs
    ``n_in · n_out · min(n_in, n_out)``.

    Examples
    --------
    >>> import torch
    >>> from topo.rules.scores import cosine_scores
    >>> a, b = torch.randn(100, 6), torch.relu(torch.randn(100, 4))
    >>> acc = StreamedScores(6, 4)
    >>> for i in range(0, 100, 32):
    ...     acc.add(a[i:i + 32], b[i:i + 32])
    >>> src, dst = torch.tensor([0, 5, 3]), torch.tensor([1, 2, 3])
    >>> bool(torch.allclose(acc.cosine().pairs(src, dst).float(), cosine_scores(a, b).pairs(src, dst)))
    True
    """

    def __init__(self, n_in: int, n_out: int, device=None) -> None:
        self.cross = torch.zeros(n_in, n_out, dtype=torch.float64, device=device)
        self.sq_a = torch.zeros(n_in, dtype=torch.float64, device=device)
        self.sq_b = torch.zeros(n_out, dtype=torch.float64, device=device)
        self.rows = 0

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Take a chunk ``a [rows, n_in]``, ``b [rows, n_out]`` (non-finite values count as 0, as in PairScores)."""
        a = torch.nan_to_num(a.detach().to(self.cross.device, torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
        b = torch.nan_to_num(b.detach().to(self.cross.device, torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
        self.cross.addmm_(a.T, b)
        self.sq_a += (a * a).sum(0)
        self.sq_b += (b * b).sum(0)
        self.rows += a.shape[0]

    def _factor(self, c: torch.Tensor):
        from ..rules.scores import PairScores

        n_in, n_out = c.shape
        if n_out <= n_in:  # a = Cᵀ [n_out, n_in], b = I: ⟨a_i, b_j⟩ = C[i, j]
            return PairScores._transposed(c.contiguous(), torch.eye(n_out, dtype=c.dtype, device=c.device))
        return PairScores._transposed(torch.eye(n_in, dtype=c.dtype, device=c.device), c.T.contiguous())

    def cosine(self):
        """``|cos(a_i, b_j)|`` over every row added (a dead, all-zero column scores 0)."""
        inv = lambda sq: torch.where(sq > 0, sq.rsqrt(), torch.zeros_like(sq))  # noqa: E731
        return self._factor(self.cross * inv(self.sq_a)[:, None] * inv(self.sq_b)[None, :])

    def gradient(self):
        """``|Σ_s a[s, i] · b[s, j]|`` over every row added (RigL's dense gradient)."""
        return self._factor(self.cross)


def _default_loss(out, y):
    return nn.functional.cross_entropy(out, y, reduction="sum")


def _post(k: int, layers: list, activation, own, mlp_layers: int, final: bool, out, nxt):
    """Postsynaptic activity of sparse layer ``k`` over a chunk, from its output (and the next layer's input)."""
    if own is not None:  # a SparseMLP: its own activation modules, softmax on the logits
        return torch.softmax(out, dim=1) if k == mlp_layers - 1 else own[k](out)
    if activation != "auto":
        return activation(out)
    if final:
        return torch.softmax(out, dim=1)
    if nxt is not None and nxt.shape == out.shape:
        return nxt  # the input of the next sparse layer: this one's output after the activation between
    return out


def collect_scores(model: nn.Module, layers: list, data, needs: set, *, max_samples: int | None,
                   generator: torch.Generator, activation="auto", loss_fn=None) -> list[dict]:
    """Run ``model`` over a sample of ``data`` in eval mode and gather, per layer in ``layers``,
    ``{"activations": (pre, post)}`` and/or ``{"gradients": (x, dY)}`` as ``needs`` asks
    (``max_samples=None``: over every row, streamed, as :class:`~topo.rules.scores.PairScores`).

    The post-activation of a layer (``activation="auto"``): a SparseMLP's own
    activation; softmax for the layer that produces the model's output; the
    next sparse layer's input when it has this layer's width and rows; else the
    layer's raw output. Parameter gradients are left untouched
    (``torch.autograd.grad``, not ``backward``).
    """
    want_grad = "gradients" in needs
    want_act = "activations" in needs
    stream = max_samples is None
    loss_fn = loss_fn or _default_loss
    ref = layers[0].weight
    n = len(layers)
    own = getattr(model, "activations", None)
    mlp_layers = getattr(model, "layers", None)
    own = own if activation == "auto" and isinstance(own, nn.ModuleList) and isinstance(mlp_layers, list) \
        and len(mlp_layers) == len(own) + 1 and all(a is b for a, b in zip(layers, mlp_layers)) else None
    n_mlp = len(mlp_layers) if own is not None else 0
    chunk_in: list = [None] * n
    chunk_out: list = [None] * n
    live: list = [None] * n
    kept: list[dict] = [{"pre": [], "post": [], "dy": []} for _ in range(n)]
    acc_act = [StreamedScores(m.in_features, m.out_features, ref.device) for m in layers] if stream and want_act \
        else None
    acc_grad = [StreamedScores(m.in_features, m.out_features, ref.device) for m in layers] if stream and want_grad \
        else None

    def hook(k):
        def fn(module, args, out):
            chunk_in[k] = args[0].detach().reshape(-1, module.in_features)
            chunk_out[k] = out.detach().reshape(-1, module.out_features)
            live[k] = out
        return fn

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(layers)]
    was_training = model.training
    model.eval()  # no dropout: activations of the network as it predicts, and no global RNG use
    seen = 0
    try:
        for x, y in sample_batches(data, max_samples, generator):
            x = x.to(ref.device)
            if x.is_floating_point():
                x = x.to(ref.dtype)
            chunk_in[:], chunk_out[:], live[:] = [None] * n, [None] * n, [None] * n
            dys: tuple = ()
            if want_grad:
                if not isinstance(y, torch.Tensor):
                    raise ParameterError("gradient scores need targets: pass data as (inputs, targets) "
                                         "or batches of (x, y)")
                with torch.enable_grad():
                    result = model(x)
                    _check_used(live)
                    dys = torch.autograd.grad(loss_fn(result, y.to(result.device)), live, allow_unused=True)
            else:
                with torch.no_grad():
                    result = model(x)
                _check_used(live)
            seen += x.shape[0]
            # Softmax only for logits the model returns as they are; a residual sum is not a distribution.
            final = [live[k] is result for k in range(n)]
            with torch.no_grad():
                for k, layer in enumerate(layers):
                    if want_act:
                        nxt = chunk_in[k + 1] if k + 1 < n else None
                        post = _post(k, layers, activation, own, n_mlp, final[k], chunk_out[k], nxt)
                        if stream:
                            acc_act[k].add(chunk_in[k], post)
                        else:
                            kept[k]["post"].append(post)
                    if want_grad:
                        dy = dys[k]
                        dy = torch.zeros_like(chunk_out[k]) if dy is None else dy.detach().reshape(
                            -1, layer.out_features)
                        if stream:
                            acc_grad[k].add(chunk_in[k], dy)
                        else:
                            kept[k]["dy"].append(dy)
                    if not stream:
                        kept[k]["pre"].append(chunk_in[k])
            chunk_in[:], chunk_out[:], live[:] = [None] * n, [None] * n, [None] * n
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise ParameterError("data yielded no samples")
    out: list[dict] = [{} for _ in range(n)]
    for k in range(n):
        if want_act:
            out[k]["activations"] = acc_act[k].cosine() if stream else \
                (torch.cat(kept[k]["pre"]), torch.cat(kept[k]["post"]))
        if want_grad:
            out[k]["gradients"] = acc_grad[k].gradient() if stream else \
                (torch.cat(kept[k]["pre"]), torch.cat(kept[k]["dy"]))
    return out


def _check_used(live: list) -> None:
    missing = [k for k, t in enumerate(live) if t is None]
    if missing:
        raise ParameterError(f"sparse layers {missing} were not used by the model's forward")
