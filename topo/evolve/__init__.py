"""Evolution: :class:`Evolver` applies a :mod:`topo.rules` rule to a model's sparse layers.

``evolver``  the step (scores → rule → rewire → history), its schedule and state
``collect``  activation and gradient collection for the rules that need them
"""

from .evolver import Evolver

__all__ = ["Evolver"]
