"""topo — network science for sparse neural networks.

The connectivity of a network is a first-class graph object (:class:`Topology`,
a stack of bipartite :class:`LayerGraph` edge sets) that is born Erdős–Rényi,
evolved by rules during training (:mod:`topo.rules`, :class:`Evolver`),
compiled to truly sparse torch layers (:func:`compile`, :mod:`topo.nn`),
trained (:class:`Trainer`), exported (:mod:`topo.io`) and analysed (the
top-level ``analysis`` package, which imports topo — never the reverse).
``topo.distributed`` is imported on use (it loads torch.distributed).
"""

from . import datasets, io, nn, rules  # noqa: E402, I001  (after the graph core they build on)
from .errors import DatasetError, ParameterError, ParameterTypeError, TopoError, TopologyError, TopologyFormatError
from .evolve import Evolver  # noqa: E402
from .graph import (
                    History,
                    LayerChange,
                    LayerGraph,
                    Topology,
                    erdos_renyi,
                    erk,
                    erk_densities,
                    from_dense_masks,
                    from_edges,
                    from_edges_frame,
                    from_igraph,
                    from_networkx,
                    load,
                    set_density,
)
from .nn import compile, load_model, save_model, sparsify  # noqa: E402
from .nn.memory import estimate_memory  # noqa: E402
from .train import Trainer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Topology", "LayerGraph", "History", "LayerChange", "erdos_renyi", "erk", "erk_densities",
           "set_density", "from_dense_masks", "from_edges", "from_edges_frame", "from_networkx",
           "from_igraph", "load", "compile", "sparsify", "load_model", "save_model", "Evolver", "Trainer",
           "estimate_memory", "nn", "rules", "io", "datasets",
           "TopoError", "ParameterError", "ParameterTypeError", "TopologyError", "TopologyFormatError",
           "DatasetError"]
