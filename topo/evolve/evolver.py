"""The Evolver: apply an evolution rule to every sparse layer of a compiled model and keep its History."""

from __future__ import annotations

import time
from numbers import Integral

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..graph.history import History, LayerChange
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from ..rules.base import RuleContext
from ..rules.compose import Rule
from ..rules.registry import from_name
from ..rules.schedules import Schedule

__all__ = ["Evolver"]

_EMPTY = torch.empty(2, 0, dtype=torch.int64)


def _sparse_layers(model: nn.Module) -> list[nn.Module]:
    from ..nn.linear import SparseLinear

    layers = list(model.sparse_layers) if hasattr(model, "sparse_layers") else \
        [m for m in model.modules() if isinstance(m, SparseLinear)]
    if not layers or not all(isinstance(m, SparseLinear) for m in layers):
        raise ParameterError(f"{type(model).__name__} has no SparseLinear layers to evolve "
                             f"(compile a topology with topo.compile, or use topo.nn.SparseLinear)")
    return layers


def _activation_fn(spec):
    from ..nn.activations import make_activation

    return make_activation(spec, allow="callable")


class Evolver:
    """Evolve the sparse layers of a model with a rule, carrying optimizer state and recording a History.

    Parameters
    ----------
    model : nn.Module
        A :class:`~topo.nn.SparseMLP` (its ``sparse_layers``) or any module
        holding :class:`~topo.nn.SparseLinear` layers (in ``modules()`` order).
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
        Initial values of births; default: the model's ``regrow_init`` (a bare
        SparseLinear: He-uniform).
    max_samples : int
        Samples per update from which activations and gradients are collected.
    activation : "auto", str or callable
        How the postsynaptic activity of a layer is formed from its output for
        cosine scores. ``"auto"``: a SparseMLP's own activation modules, the
        next sparse layer's input when widths chain, else ReLU. The last layer
        always uses softmax.
    loss_fn : callable, optional
        ``loss_fn(output, target)`` for gradient scores; default
        cross-entropy summed over samples (every sample weighs the same).

    Attributes
    ----------
    history_ : History
        Epoch 0 is the model's topology at construction; every :meth:`step`
        appends births, deaths, seconds and all weights.

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
                 schedule: Schedule | None = None, seed=None, *, init=None, max_samples: int = 4096,
                 activation="auto", loss_fn=None) -> None:
        if not isinstance(model, nn.Module):
            raise ParameterTypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.layers = _sparse_layers(model)
        self.rule = from_name(rule) if isinstance(rule, str) else rule
        if not callable(self.rule) or not hasattr(self.rule, "needs"):
            raise ParameterTypeError(f"rule must be a topo.rules.Rule or a rule name, got {rule!r}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise ParameterTypeError(f"optimizer must be a torch.optim.Optimizer or None, "
                                     f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ParameterTypeError(f"schedule must be a topo.rules.Schedule or None, got {schedule!r}")
        self.schedule = schedule or Schedule()
        self.generator = make_generator(seed)
        if init is not None:
            from ..nn.init import check_init

            init = check_init(init)
        self.init = init
        if isinstance(max_samples, bool) or not isinstance(max_samples, Integral) or max_samples < 1:
            raise ParameterError(f"max_samples must be a positive int, got {max_samples!r}")
        self.max_samples = int(max_samples)
        self.activation = "auto" if isinstance(activation, str) and activation == "auto" else _activation_fn(activation)
        self.loss_fn = loss_fn
        self.updates = 0
        self.position = 0.0
        self.history_ = History(self._topology(), meta={"rule": getattr(self.rule, "name", repr(self.rule))})

    # -- structure ------------------------------------------------------------------------------
    def _topology(self) -> Topology:
        """The whole model's topology (a SparseMLP's dense output layer included) for the History."""
        if hasattr(self.model, "topology") and hasattr(self.model, "sparse_layers"):
            t = self.model.topology()
            if all(g.shape == (m.out_features, m.in_features) for g, m in zip(t.layers, self.layers)):
                return t
        return Topology([m.layer_graph() for m in self.layers])

    def _weights(self) -> list[torch.Tensor]:
        """Current values of every History layer, without rebuilding the sparse layers' graphs."""
        weights = [m.weight.detach().cpu().clone() for m in self.layers]
        extra = len(self.history_.initial) - len(weights)
        out = getattr(self.model, "output_layer", None)
        if extra == 1 and isinstance(out, nn.Linear):  # SparseMLP's dense output: row-major = CSR order
            weights.append(out.weight.detach().cpu().reshape(-1).clone())
        elif extra:
            weights += [g.weight for g in self._topology().layers[len(self.layers):]]
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
            the first ``max_samples`` of the batches (``x`` or ``(x, y, ...)``).
        metrics : dict, optional
            Validation metrics, passed to the rule before it runs.
        step : int, optional
            Optimizer steps so far, the schedule position when ``every`` counts steps.

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
        for k, layer in enumerate(self.layers):
            t0 = time.perf_counter()
            graph = layer.layer_graph()
            skipped = graph.density >= 1.0
            if not skipped:
                ctx = RuleContext(generator=self.generator, **collected[k])
                result = self.rule(graph, ctx, zeta=zeta)
                if result.births.shape[1]:
                    old_to_new = self._rewire(k, layer, result.graph)
                    if self.optimizer is not None:
                        from ..nn.optim import remap_optimizer_state

                        remap_optimizer_state(self.optimizer, layer, old_to_new)
                changes[k] = LayerChange(result.births, result.deaths)
            changes[k].seconds = time.perf_counter() - t0 + share
            summary.append({"layer": k, "births": changes[k].births.shape[1], "deaths": changes[k].deaths.shape[1],
                            "num_edges": layer.num_edges, "zeta": zeta, "seconds": changes[k].seconds,
                            "skipped": skipped})
        for k in range(len(self.layers), topo_layers):  # e.g. a dense output layer: never evolved
            summary.append({"layer": k, "births": 0, "deaths": 0, "num_edges": self.history_.initial[k].num_edges,
                            "zeta": zeta, "seconds": 0.0, "skipped": True})
        self.history_.record(label, changes, self._weights())
        self.updates += 1
        self.position = position
        return summary

    def _position(self, epoch, step) -> float:
        if self.schedule.per_epoch:
            return float(epoch) if epoch is not None else self.position + 1
        if step is not None:
            return float(step)
        return self.position + self.schedule.every

    def _rewire(self, k: int, layer, graph) -> torch.Tensor:
        kw = {} if self.init is None else {"init": self.init}
        if hasattr(self.model, "rewire") and hasattr(self.model, "sparse_layers"):
            return self.model.rewire(k, graph, keep="matching", generator=self.generator, **kw)
        return layer.rewire(graph, keep="matching", generator=self.generator, **kw)

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
