"""Evolution rules for sparse layers: prune criteria, grow criteria, their compositions, ζ schedules.

Every rule works on a :class:`~topo.LayerGraph` (with weights) plus optional
scores and knows nothing about optimizers or torch modules; the
:class:`~topo.Evolver` applies rules to a compiled model.

>>> import topo.rules as R
>>> R.SET(0.3), R.CTRE(variant="seq").name, R.from_name("magnitude+cosine").name
(SET(zeta=0.3), 'ctre-seq', 'magnitude+cosine')
"""

from .base import RuleContext, RuleResult, check_zeta, count_for
from .compose import CTRE, SET, RigL, Rule, Static
from .gradual import GMP, GraNet, cubic_density
from .grow import CosineGrow, GradientGrow, GrowCriterion, RandomGrow, SequentialGrow
from .prune import CosinePrune, MagnitudePrune, PruneCriterion, RandomPrune
from .registry import GROW, PRUNE, RULE_NAMES, RULES, from_name, names, register, register_grow, register_prune
from .schedules import DECAYS, Schedule
from .scores import PairScores, cosine_scores, gradient_scores, topk_by_key

__all__ = ["Rule", "Static", "SET", "CTRE", "RigL", "GMP", "GraNet", "cubic_density", "from_name", "RULE_NAMES",
           "RULES", "PRUNE", "GROW", "register", "register_prune", "register_grow", "names",
           "PruneCriterion", "MagnitudePrune", "CosinePrune", "RandomPrune",
           "GrowCriterion", "RandomGrow", "CosineGrow", "GradientGrow", "SequentialGrow",
           "Schedule", "DECAYS", "RuleContext", "RuleResult", "check_zeta", "count_for",
           "PairScores", "cosine_scores", "gradient_scores", "topk_by_key"]
