"""The Evolver: apply an evolution rule to every sparse layer of a compiled model and keep its History."""

from __future__ import annotations

import time
from numbers import Integral

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..graph.history import History, LayerChange, parse_history_weights
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from ..rules.base import RuleContext
from ..rules.compose import Rule
from ..rules.registry import from_name
from ..rules.schedules import Schedule

__all__ = ["Evolver"]

_EMPTY = torch.empty(2, 0, dtype=torch.int64)


def _sparse_layers(model: nn.Module, layers=None) -> list[nn.Module]:
    """A SparseMLP's ``sparse_layers``, else the SparseLinear modules of any model (``named_modules()`` order)."""
    from ..nn.linear import SparseLinear
    from ..nn.sparsify import sparse_layers

    if layers is None and hasattr(model, "sparse_layers"):
        found = list(model.sparse_layers)
    else:
        found = [m for _, m in sparse_layers(model, layers)]
    if not found or not all(isinstance(m, SparseLinear) for m in found):
        raise ParameterError(f"{type(model).__name__} has no SparseLinear layers to evolve "
                             f"(topo.sparsify(model, ...) replaces its nn.Linear layers, topo.compile builds "
                             f"a SparseMLP, or use topo.nn.SparseLinear)")
    return found


def _activation_fn(spec):
    from ..nn.activations import make_activation

    return make_activation(spec, allow="callable")


class Evolver:
    """Evolve the sparse layers of a model with a rule, carrying optimizer state and recording a History.

    Parameters
    ----------
    model : nn.Module
        A :class:`~topo.nn.SparseMLP` (its ``sparse_layers``) or any module
        holding :class:`~topo.nn.SparseLinear` layers — e.g. a model passed
        through :func:`topo.sparsify` — in ``named_modules()`` order. What the
        cosine and gradient rules read is collected with forward hooks on those
        layers and ``torch.autograd.grad`` on their outputs, so any forward works.
    rule : Rule or str
        E.g. ``topo.rules.SET(0.3)`` or a name for :func:`topo.rules.from_name`.
    optimizer : torch.optim.Optimizer, optional
        Its per-edge state (momentum, Adam moments) follows the surviving
        edges and starts at zero for births.
    schedule : Schedule, optional
        Cadence and ζ decay; default: constant ζ, every epoch.
    seed : int or torch.Generator, optional
        The one generator behind every random choice of the evolution (random
        growth, pools, data sampling, initial values of births).
    init : str or ("normal", sigma), optional
        Initial values of births; default: the model's ``regrow_init`` (any
        other model: ``"zeros"``, as SET's Keras code and RigL do).
    max_samples : int or None
        Samples per update from which activations and gradients are collected.
        ``None``: every row of ``data``, streamed in chunks — exact scores over
        the whole training set (CTRE's reference computes cosines over the data it
        sees) in memory ``O(chunk · width + n_in · n_out)`` per layer, not
        ``O(rows · width)`` (:class:`topo.evolve.collect.StreamedScores`).
    activation : "auto", str or callable
        How the postsynaptic activity of a layer is formed from its output for
        cosine scores. ``"auto"``: a SparseMLP's own activation modules, softmax
        for the layer whose output is the model's output (logits), else the
        input of the next sparse layer when it has this layer's width and rows
        (the activation in between, as in an MLP head), else the layer's raw
        output (e.g. a transformer block's second linear, before the residual).
        A SparseMLP's last layer always uses softmax.
    loss_fn : callable, optional
        ``loss_fn(output, target)`` for gradient scores; default
        cross-entropy summed over samples (every sample weighs the same).
    history_weights : str or int
        Which updates the History stores all weights of: ``"all"``
        (default), ``"every:K"`` (every ``K``-th update; ``K`` epochs with an
        epoch schedule), ``"none"``; a ``":float16"`` suffix stores them in
        half precision (:func:`topo.graph.history.parse_history_weights`).
        Births and deaths are always recorded.
    layers : list of str, list of SparseLinear or callable, optional
        Evolve only these sparse layers of ``model`` (glob patterns on module
        names, the modules, or ``(name, module) -> bool``); they must chain.
        Default: all of them.

    Attributes
    ----------
    history_ : History
        Epoch 0 is the model's topology at construction; every :meth:`step`
        appends births, deaths, seconds and all weights.
    trainer_optimizer : torch.optim.Optimizer or None
        The optimizer a :class:`~topo.Trainer` made and attached to this evolver
        (a later Trainer, e.g. resuming the run, may replace it with its own);
        ``None`` when ``optimizer`` is the user's.

    Examples
    --------
    >>> import topo, torch
    >>> model = topo.compile(topo.erdos_renyi([20, 30, 5], epsilon=3, seed=0), seed=0)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> ev = topo.Evolver(model, topo.rules.SET(0.3), optimizer=opt, seed=0)
    >>> [row["births"] for row in ev.step(epoch=1)]
    [45, 32]
    >>> ev.history_.epochs
    [0.0, 1.0]
    """

    def __init__(self, model: nn.Module, rule: Rule | str, optimizer: torch.optim.Optimizer | None = None,
                 schedule: Schedule | None = None, seed=None, *, init=None, max_samples: int | None = 4096,
                 activation="auto", loss_fn=None, history_weights: str | int = "all", layers=None) -> None:
        if not isinstance(model, nn.Module):
            raise ParameterTypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.layers = _sparse_layers(model, layers)
        # A SparseMLP evolved whole is addressed through its own topology()/rewire(); a subset is not.
        self._mlp = layers is None and hasattr(model, "topology") and hasattr(model, "sparse_layers")
        self.rule = from_name(rule) if isinstance(rule, str) else rule
        if not callable(self.rule) or not hasattr(self.rule, "needs"):
            raise ParameterTypeError(f"rule must be a topo.rules.Rule or a rule name, got {rule!r}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise ParameterTypeError(f"optimizer must be a torch.optim.Optimizer or None, "
                                     f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.trainer_optimizer = None  # set by a Trainer that attached an optimizer it made (see Attributes)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ParameterTypeError(f"schedule must be a topo.rules.Schedule or None, got {schedule!r}")
        self.schedule = schedule or Schedule()
        self.generator = make_generator(seed)
        if init is not None:
            from ..nn.init import check_init

            init = check_init(init)
        self.init = init
        if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, Integral)
                                        or max_samples < 1):
            raise ParameterError(f"max_samples must be a positive int or None (every row, streamed), "
                                 f"got {max_samples!r}")
        self.max_samples = None if max_samples is None else int(max_samples)
        self.activation = "auto" if isinstance(activation, str) and activation == "auto" else _activation_fn(activation)
        self.loss_fn = loss_fn
        self.updates = 0
        self.position = 0.0
        self.history_weights = parse_history_weights(history_weights)
        self.history_ = History(self._topology(), meta={"rule": getattr(self.rule, "name", repr(self.rule))})

    # -- structure ------------------------------------------------------------------------------
    def _topology(self) -> Topology:
        """The whole model's topology (a SparseMLP's dense output layer included) for the History."""
        if self._mlp:
            t = self.model.topology()
            if all(g.shape == (m.out_features, m.in_features) for g, m in zip(t.layers, self.layers)):
                return t
        for k in range(1, len(self.layers)):
            if self.layers[k].in_features != self.layers[k - 1].out_features:
                names = {id(m): n for n, m in self.model.named_modules()}
                a, b = names.get(id(self.layers[k - 1]), k - 1), names.get(id(self.layers[k]), k)
                raise ParameterError(
                    f"the sparse layers do not chain into one topology: {a!r} has out_features="
                    f"{self.layers[k - 1].out_features}, the next one {b!r} in_features="
                    f"{self.layers[k].in_features}; evolve each chained group with its own "
                    f"Evolver(model, rule, layers=[...])")
        return Topology([m.layer_graph() for m in self.layers])

    def _weights(self) -> list[torch.Tensor]:
        """Current values of every History layer, without rebuilding the sparse layers' graphs.

        Live tensors where no cast is needed: :meth:`History.record` copies what it keeps, once.
        """
        dtype = self.history_weights.dtype
        weights = [m.weight.detach().to(dtype) for m in self.layers]
        extra = len(self.history_.initial) - len(weights)
        out = getattr(self.model, "output_layer", None)
        if extra == 1 and isinstance(out, nn.Linear):  # SparseMLP's dense output: row-major = CSR order
            weights.append(out.weight.detach().to(dtype).reshape(-1))
        elif extra:
            weights += [None if g.weight is None else g.weight.to(dtype)
                        for g in self._topology().layers[len(self.layers):]]
        return weights

    def due(self, *, epoch: float | None = None, step: int | None = None) -> bool:
        """Whether the schedule wants an update after ``epoch`` epochs or ``step`` optimizer steps."""
        return self.schedule.due(epoch=epoch, step=step)

    def observe(self, metrics: dict) -> None:
        """Pass validation metrics to the rule (CTRE-seq watches ``val_acc``)."""
        if not isinstance(metrics, dict):
            raise ParameterTypeError(f"metrics must be a dict such as {{'val_acc': 0.9}}, got {metrics!r}")
        if hasattr(self.rule, "observe"):
            self.rule.observe(metrics)

    # -- the update -----------------------------------------------------------------------------
    def step(self, epoch: float | None = None, data=None, metrics: dict | None = None,
             step: int | None = None) -> list[dict]:
        """Evolve every sparse layer once and record it.

        Parameters
        ----------
        epoch : float, optional
            The History label (must increase); default: the schedule position.
        data : Tensor, (inputs, targets) or iterable of batches, optional
            Samples for cosine/gradient scores (only read if the rule needs
            them): up to ``max_samples`` rows drawn at random from tensors, or
            the first ``max_samples`` of the batches (``x`` or ``(x, y, ...)``);
            every row, streamed, with ``max_samples=None``.
        metrics : dict, optional
            Validation metrics, passed to the rule before it runs.
        step : int, optional
            Optimizer steps so far, the schedule position when ``every`` counts steps;
            recorded in the History either way.

        Returns
        -------
        list of dict
            Per model layer: ``layer``, ``births``, ``deaths``, ``num_edges``, ``zeta``, ``seconds``, ``skipped``.
        """
        t_start = time.perf_counter()
        if metrics is not None:
            self.observe(metrics)
        position = self._position(epoch, step)
        label = float(epoch) if epoch is not None else position
        if not label > self.history_.epochs[-1]:  # checked before any layer is touched
            raise ParameterError(f"epoch {label:g} must come after the last recorded epoch "
                                 f"{self.history_.epochs[-1]:g}")
        zeta = self.schedule.zeta(self.rule.zeta, position)
        needs = set(self.rule.needs)
        collected = self._collect(data, needs) if needs else [{} for _ in self.layers]
        share = (time.perf_counter() - t_start) / len(self.layers)
        topo_layers = len(self.history_.initial)
        changes = [LayerChange() for _ in range(topo_layers)]
        summary = []
        progress = self.schedule.progress(position)
        for k, layer in enumerate(self.layers):
            t0 = time.perf_counter()
            graph = layer.layer_graph()
            ctx = RuleContext(generator=self.generator, progress=progress, **collected[k])
            result = self.rule(graph, ctx, zeta=zeta)
            if result.births.shape[1] or result.deaths.shape[1]:
                self._apply(k, layer, result)
            changes[k] = LayerChange(result.births, result.deaths)
            skipped = graph.density >= 1.0 and not changes[k].births.shape[1] and not changes[k].deaths.shape[1]
            changes[k].seconds = time.perf_counter() - t0 + share
            summary.append({"layer": k, "births": changes[k].births.shape[1], "deaths": changes[k].deaths.shape[1],
                            "num_edges": layer.num_edges, "zeta": zeta, "seconds": changes[k].seconds,
                            "skipped": skipped})
            del graph, result  # this layer's keys and values copies: not held while the next layer evolves
        for k in range(len(self.layers), topo_layers):  # e.g. a dense output layer: never evolved
            summary.append({"layer": k, "births": 0, "deaths": 0, "num_edges": self.history_.initial[k].num_edges,
                            "zeta": zeta, "seconds": 0.0, "skipped": True})
        # The births and deaths are the rule's fresh tensors, used nowhere else: handed over, not copied.
        self.history_.record(label, changes, self._weights() if self.history_weights.due(self.updates + 1) else None,
                             step=step, copy_changes=False)
        self.updates += 1
        self.position = position
        return summary

    def _position(self, epoch, step) -> float:
        if self.schedule.per_epoch:
            return float(epoch) if epoch is not None else self.position + 1
        if step is not None:
            return float(step)
        return self.position + self.schedule.every

    def _apply(self, k: int, layer, result) -> None:
        """Rewire layer ``k`` to ``result.graph`` and carry the optimizer state along."""
        reborn = getattr(result, "reborn", _EMPTY)
        if reborn.shape[1]:
            # Pruned and regrown in one step (allow_regrow_pruned="reinit"): let them die first, so the
            # second rewire gives them a fresh value and zero optimizer state like any other birth.
            g = result.graph
            back = torch.isin(g.keys(), reborn[1] * g.n_in + reborn[0])
            w = None if g.weight is None else g.weight[~back]
            self._rewire(k, layer, type(g)(g.n_in, g.n_out, g.src[~back], g.dst[~back], w))
        self._rewire(k, layer, result.graph)

    def _rewire(self, k: int, layer, graph) -> None:
        init = self.init if self.init is not None else getattr(self.rule, "init", None)
        kw = {} if init is None else {"init": init}
        if self._mlp and hasattr(self.model, "rewire"):
            old_to_new = self.model.rewire(k, graph, keep="matching", generator=self.generator, **kw)
        else:
            old_to_new = layer.rewire(graph, keep="matching", generator=self.generator, **kw)
        if self.optimizer is not None:
            from ..nn.optim import remap_optimizer_state

            remap_optimizer_state(self.optimizer, layer, old_to_new)

    # -- scores -----------------------------------------------------------------------------------
    def _collect(self, data, needs: set) -> list[dict]:
        """Activations ``(pre, post)`` and/or gradients ``(x, dY)`` per sparse layer over a sample of ``data``."""
        from .collect import collect_scores

        if data is None:
            raise ParameterError(f"rule {getattr(self.rule, 'name', self.rule)!r} needs {sorted(needs)}: "
                                 f"pass data to Evolver.step(data=...)")
        return collect_scores(self.model, self.layers, data, needs, max_samples=self.max_samples,
                              generator=self.generator, activation=self.activation, loss_fn=self.loss_fn)

    # -- resume -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Generator state, schedule position and rule state (CTRE-seq counters); the History is saved apart."""
        return {"generator": self.generator.get_state(), "updates": self.updates, "position": self.position,
                "rule": self.rule.state_dict() if hasattr(self.rule, "state_dict") else {},
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        try:
            self.generator.set_state(state["generator"])
            self.updates, self.position = int(state["updates"]), float(state["position"])
            if hasattr(self.rule, "load_state_dict"):
                self.rule.load_state_dict(state["rule"])
            self.schedule.load_state_dict(state["schedule"])
        except (KeyError, TypeError, RuntimeError) as err:
            raise ParameterError(f"not an Evolver state: {err}") from None

    def __repr__(self) -> str:
        return (f"Evolver(rule={self.rule!r}, layers={len(self.layers)}, schedule={self.schedule!r}, "
                f"updates={self.updates})")
