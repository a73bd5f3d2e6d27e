"""``sparsify``: turn the ``nn.Linear`` layers of any model into truly sparse, evolvable :class:`SparseLinear`.

A researcher's model (a CNN with a classifier head, a transformer MLP block)
keeps its own class, forward and training loop; :func:`sparsify` swaps the
chosen linear layers in place for :class:`SparseLinear` layers with an
Erdős–Rényi edge set, and :class:`topo.Evolver` then evolves them.
:func:`sparse_layers` and :func:`topology_of` find them again (both in the
model's ``named_modules()`` order, the order :class:`topo.Evolver` uses).
"""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from .init import check_init
from .linear import SparseLinear

__all__ = ["sparsify", "sparse_layers", "topology_of"]


def _matcher(spec, what: str):
    """``(predicate(name, module), patterns)`` from glob patterns, a callable or ``None``."""
    if spec is None:
        return None, []
    if callable(spec):
        return spec, []
    patterns = [spec] if isinstance(spec, str) else list(spec)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ParameterTypeError(f"{what} must be a module name pattern, a list of them or a callable "
                                 f"(name, module) -> bool, got {spec!r}")
    return (lambda name, module: any(fnmatch.fnmatchcase(name, p) for p in patterns)), patterns


def _plain_linear(module: nn.Module) -> bool:
    # Subclasses may change forward (LoRA, quantised linears) or have their weight read directly by
    # their owner (nn.MultiheadAttention's out_proj): only plain nn.Linear is safe to swap.
    return type(module) is nn.Linear


def sparsify(model: nn.Module, epsilon: float | None = None, density: float | None = None, *,
             include=None, exclude=None, seed=None, init="keep", backend: str = "auto") -> Topology:
    """Replace the chosen ``nn.Linear`` modules of ``model`` in place by :class:`SparseLinear` layers.

    Each chosen ``(out, in)`` linear layer gets an Erdős–Rényi edge set (SET's
    ``epsilon``: density ``ε(n_in+n_out)/(n_in·n_out)``, capped at 1; or a
    ``density``), drawn from ``seed``. The new layer sits under the same
    module name, on the same device, in the same dtype, with the same
    ``requires_grad`` and training mode; its bias is the old bias (copied).

    Parameters
    ----------
    model : nn.Module
        Any model; its plain ``nn.Linear`` submodules are the candidates
        (subclasses such as ``nn.MultiheadAttention``'s ``out_proj``, whose weight
        its owner reads directly, are never replaced).
    epsilon, density : float
        Give exactly one.
    include, exclude : str, list of str or callable, optional
        Which candidates to replace: glob patterns on the qualified module names
        (``"head.*"``, ``"blocks.*.mlp.fc?"``) or a callable ``(name, module) ->
        bool``. Default: every candidate; ``exclude`` then removes some. A
        pattern that matches no candidate is an error (a typo would otherwise
        silently leave the model dense).
    seed : int or torch.Generator, optional
        One generator for every layer's edges (and re-initialised values), in
        module order: same seed, same sparse model.
    init : "keep" or an init scheme
        ``"keep"``: each edge keeps the dense layer's value at that position (a
        pretrained model stays as close to itself as the mask allows).
        Otherwise values are re-initialised with a :mod:`topo.nn.init` scheme
        (``"kaiming_uniform"`` with the sparse fans, ``"xavier_uniform_dense"``
        = SET's Keras init, ...). Biases are kept either way.
    backend : str
        Backend of the new layers (:mod:`topo.nn.backends`).

    Returns
    -------
    Topology
        A snapshot (CPU, weighted) of the replaced layers in ``named_modules()``
        order — layer ``k`` of the topology is the ``k``-th replaced module, as
        in :func:`sparse_layers` and :class:`topo.Evolver`. Consecutive layers
        must chain (``out_features`` of one = ``in_features`` of the next, as in
        an MLP head or a transformer MLP block); sparsify non-chaining groups
        with one call each (``include=``) and evolve them with one Evolver each
        (``Evolver(model, rule, layers=...)``).

    Notes
    -----
    Build the optimizer after sparsifying (the old dense parameters are gone)
    and re-register any hooks you had on the replaced modules. A module that
    appears under several names is replaced everywhere by one sparse layer.

    Examples
    --------
    >>> import torch, topo
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    >>> dense0 = net[0].weight.detach().clone()
    >>> t = topo.sparsify(net, epsilon=2, seed=0)
    >>> type(net[0]).__name__, t.sizes, t.num_edges == net[0].num_edges + net[2].num_edges
    ('SparseLinear', (20, 30, 5), True)
    >>> g = t.layers[0]
    >>> bool(torch.equal(g.weight, dense0[g.dst, g.src]))   # values kept at the sampled edges
    True
    """
    if not isinstance(model, nn.Module):
        raise ParameterTypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if (epsilon is None) == (density is None):
        raise ParameterError("sparsify needs exactly one of epsilon= or density=")
    keep = isinstance(init, str) and init == "keep"
    if not keep:
        init = check_init(init)
    chosen = _choose(model, include, exclude)
    if not chosen:
        raise ParameterError(f"{type(model).__name__} has no nn.Linear layers to sparsify"
                             + (" among those include=/exclude= select" if include or exclude else ""))
    names = [name for name, _ in chosen]
    _check_chain(names, [m.in_features for _, m in chosen], [m.out_features for _, m in chosen])
    from ..graph.generators import erdos_renyi

    gen = make_generator(seed)
    new: dict[int, SparseLinear] = {}
    # Every layer's edges first, then values: the edges do not depend on ``init``.
    graphs = [erdos_renyi([lin.in_features, lin.out_features], epsilon=epsilon, density=density,
                          seed=gen).layers[0] for _, lin in chosen]
    for (_, lin), graph in zip(chosen, graphs):
        w = lin.weight.detach()
        sp = SparseLinear(lin.in_features, lin.out_features, lin.bias is not None, layer=graph, backend=backend,
                          seed=gen, init="zeros" if keep else init, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            if keep:  # gathered on the model's device: no host round trip for a GPU model
                sp.weight.copy_(w[graph.dst.to(w.device), graph.src.to(w.device)])
            if lin.bias is not None and sp.bias is not None:  # sp has a bias exactly when lin has
                sp.bias.copy_(lin.bias.detach())
                sp.bias.requires_grad_(lin.bias.requires_grad)
        sp.weight.requires_grad_(lin.weight.requires_grad)
        sp.train(lin.training)
        new[id(lin)] = sp
    # Every name under which a chosen module is registered (shared modules appear more than once).
    for full, module in list(model.named_modules(remove_duplicate=False)):
        if id(module) in new and full:
            parent, _, child = full.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, new[id(module)])
    return Topology([new[id(m)].layer_graph() for _, m in chosen])


def _choose(model: nn.Module, include, exclude) -> list[tuple[str, nn.Linear]]:
    if isinstance(model, nn.Linear) and not any(True for _ in model.children()):
        raise ParameterError("model is itself an nn.Linear and cannot be replaced in place: wrap it "
                             "(nn.Sequential(linear)) or build topo.nn.SparseLinear directly")
    inc, inc_patterns = _matcher(include, "include")
    exc, exc_patterns = _matcher(exclude, "exclude")
    named = [(n, m) for n, m in model.named_modules() if n]
    for patterns, what in ((inc_patterns, "include"), (exc_patterns, "exclude")):
        for p in patterns:
            hits = [(n, m) for n, m in named if fnmatch.fnmatchcase(n, p)]
            if not any(isinstance(m, nn.Linear) for _, m in hits):
                cands = [n for n, m in named if _plain_linear(m)]
                raise ParameterError(f"{what} pattern {p!r} matches no nn.Linear of {type(model).__name__}; "
                                     f"its linear layers are: {', '.join(cands) or 'none'}")
    chosen = []
    for name, module in named:
        if not isinstance(module, nn.Linear):
            continue
        if inc is not None and not inc(name, module):
            continue
        if exc is not None and exc(name, module):
            continue
        if not _plain_linear(module):
            if inc is not None:
                raise ParameterError(f"{name!r} is a {type(module).__name__}, not a plain nn.Linear: its owner "
                                     f"or its forward may read the dense weight directly, so it cannot be "
                                     f"replaced; exclude it")
            continue
        chosen.append((name, module))
    return chosen


def _check_chain(names: list[str], ins: list[int], outs: list[int]) -> None:
    for k in range(1, len(names)):
        if ins[k] != outs[k - 1]:
            raise ParameterError(
                 f"the chosen layers do not chain into one topology: {names[k - 1]!r} has out_features="
                 f"{outs[k - 1]} but the next one, {names[k]!r}, has in_features={ins[k]}; sparsify each "
                 f"chained group with its own call (include=...) and evolve it with its own "
                 f"topo.Evolver(model, rule, layers=...)")


def sparse_layers(model: nn.Module, layers=None) -> list[tuple[str, SparseLinear]]:
    """``(name, layer)`` of the :class:`SparseLinear` modules of ``model`` in ``named_modules()`` order.

    ``layers`` selects some: glob patterns on their names, a callable ``(name, module) -> bool``, or
    the modules themselves (kept in the order given).

    >>> import topo
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> _ = topo.sparsify(net, density=0.5, seed=0)
    >>> [name for name, _ in topo.nn.sparse_layers(net)]
    ['0', '2']
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, SparseLinear)]
    if layers is None:
        return found
    if isinstance(layers, (list, tuple)) and layers and all(isinstance(m, nn.Module) for m in layers):
        names = {id(m): n for n, m in found}
        missing = [type(m).__name__ for m in layers if id(m) not in names]
        if missing:
            raise ParameterError(f"layers must be SparseLinear modules of the model; {missing} are not")
        return [(names[id(m)], m) for m in layers]
    pick, patterns = _matcher(layers, "layers")
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n, _ in found):
            raise ParameterError(f"layers pattern {p!r} matches no SparseLinear of {type(model).__name__}; "
                                 f"its sparse layers are: {', '.join(n for n, _ in found) or 'none'}")
    return [(n, m) for n, m in found if pick(n, m)]


def topology_of(model: nn.Module, layers=None) -> Topology:
    """The current edges and values of the model's :class:`SparseLinear` layers (see :func:`sparse_layers`)."""
    chosen = sparse_layers(model, layers)
    if not chosen:
        raise ParameterError(f"{type(model).__name__} has no SparseLinear layers")
    _check_chain([n for n, _ in chosen], [m.in_features for _, m in chosen], [m.out_features for _, m in chosen])
    return Topology([m.layer_graph() for _, m in chosen])
