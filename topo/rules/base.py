"""What prune and grow criteria share: the per-layer context, the result of a rule, ζ checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real

import torch

from ..errors import ParameterError
from ..graph.layer import LayerGraph
from ..graph.sampling import make_generator
from .scores import PairScores, cosine_scores, gradient_scores

__all__ = ["RuleContext", "RuleResult", "Criterion", "check_zeta", "count_for"]


def check_zeta(zeta, name: str = "zeta") -> float:
    """``zeta`` as a float in ``[0, 1]``, else a :class:`~topo.errors.TopologyError` naming it."""
    if isinstance(zeta, bool) or not isinstance(zeta, Real) or not math.isfinite(float(zeta)) \
            or not 0.0 <= float(zeta) <= 1.0:
        raise ParameterError(f"{name} must be a number in [0, 1], got {zeta!r}")
    return float(zeta)


def count_for(zeta: float, n: int) -> int:
    """How many of ``n`` items a fraction ``zeta`` selects: ``ζ·n`` rounded half up.

    Rounding half up (not ``ceil``) keeps float noise such as ``0.3 * 10 =
    3.0000000000000004`` from adding an edge.

    Examples
    --------
    >>> count_for(0.3, 10), count_for(0.25, 2), count_for(0.2, 7)
    (3, 1, 1)
    """
    return min(n, int(math.floor(zeta * n + 0.5)))


@dataclass
class RuleContext:
    """Everything a criterion may use besides the layer itself.

    Parameters
    ----------
    generator : torch.Generator
        The source of every random choice.
    activations : PairScores or (pre, post), optional
        Cosine scores, or the post-activation samples ``pre [S, n_in]`` and
        ``post [S, n_out]`` they are computed from (on first use).
    gradients : PairScores or (x, grad_out), optional
        RigL scores, or the layer input ``x [S, n_in]`` and output gradient
        ``grad_out [S, n_out]``.
    pruned : Tensor
        Sorted keys of the edges pruned in this step; set by :class:`~topo.rules.Rule`.
    progress : float, optional
        Where this update stands in its schedule, in ``[0, 1]``: ``k / n`` for
        the ``k``-th of ``n`` scheduled updates (set by the
        :class:`~topo.Evolver` when the schedule knows its total). Rules whose
        edge budget follows a schedule (:class:`~topo.rules.GMP`) read it.
    """

    generator: torch.Generator = field(default_factory=lambda: make_generator(None))
    activations: PairScores | tuple | None = None
    gradients: PairScores | tuple | None = None
    pruned: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    progress: float | None = None

    @classmethod
    def coerce(cls, context) -> RuleContext:
        """A context from a context, a seed, a generator or ``None``."""
        if isinstance(context, RuleContext):
            return context
        return cls(generator=make_generator(context))

    def cosine(self) -> PairScores:
        if self.activations is None:
            raise ParameterError("this rule scores by cosine similarity and needs activations "
                                 "(RuleContext(activations=(pre, post)) or Evolver.step(data=...))")
        if not isinstance(self.activations, PairScores):
            self.activations = cosine_scores(*self.activations)
        return self.activations

    def gradient(self) -> PairScores:
        if self.gradients is None:
            raise ParameterError("this rule scores by gradient and needs the layer input and output gradient "
                                 "(RuleContext(gradients=(x, grad_out)) or Evolver.step(data=...))")
        if not isinstance(self.gradients, PairScores):
            self.gradients = gradient_scores(*self.gradients)
        return self.gradients


@dataclass
class RuleResult:
    """A rewired layer: the new graph (survivors keep their weights, births weigh 0) and what changed.

    ``births`` and ``deaths`` are int64 ``[2, k]`` edge lists (row 0 input,
    row 1 output), as :class:`~topo.LayerChange` takes them; their lengths
    differ when the rule changes the edge count. ``reborn`` lists the edges
    that are in both (pruned and regrown in the same step, with
    ``allow_regrow_pruned="reinit"``): they restart from a fresh value.
    """

    graph: LayerGraph
    births: torch.Tensor
    deaths: torch.Tensor
    reborn: torch.Tensor = field(default_factory=lambda: torch.empty(2, 0, dtype=torch.int64))

    @property
    def num_changed(self) -> int:
        return int(self.births.shape[1])

    @property
    def num_edges(self) -> int:
        """Edges after the step: ``graph.num_edges``."""
        return self.graph.num_edges


class Criterion:
    """Base of prune and grow criteria: what they need, what they remember."""

    @property
    def needs(self) -> frozenset:
        """Score sources used, a subset of ``{"activations", "gradients"}`` (a class attribute in most criteria)."""
        return frozenset()

    def observe(self, metrics: dict) -> None:
        """Take validation metrics; stateless criteria ignore them."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
