"""Exception hierarchy of topo.

Every exception topo raises on purpose derives from :class:`TopoError`, and
each also derives from the builtin a torch or scikit-learn user expects, so
``except ValueError`` / ``except TypeError`` keep working for callers who do
not know topo's types:

=============================  =====================  ==============================================
class                          builtin base           raised for
=============================  =====================  ==============================================
:class:`ParameterError`        ``ValueError``         a bad argument or setting value: ``lr=-1``,
                                                      an unknown rule, activation, backend or format
:class:`ParameterTypeError`    ``TypeError``          an argument of the wrong type: a list where a
                                                      ``LayerGraph`` is expected, a float for a seed
:class:`TopologyError`         ``ValueError``         a graph invariant broken: duplicate or
                                                      out-of-range edges, weights not aligned with
                                                      the edges, layers that do not chain
:class:`TopologyFormatError`   (``TopologyError``)    a file truncated, corrupt, of another kind or
                                                      of an unsupported version
:class:`DatasetError`          (``TopologyError``)    a dataset unknown, missing or failing its
                                                      checksum
:class:`TopologyMismatchError` (``TopologyError``)    ranks of a distributed run disagree
=============================  =====================  ==============================================

:class:`topo.nn.BackendUnavailableError` (a ``ParameterError`` and an
``ImportError``) names a backend whose optional dependency is missing.

Examples
--------
>>> import topo
>>> try:
...     topo.rules.SET(zeta=2.0)
... except topo.ParameterError as err:
...     isinstance(err, ValueError), isinstance(err, topo.TopoError)
(True, True)
"""

__all__ = ["TopoError", "ParameterError", "ParameterTypeError", "TopologyError", "TopologyFormatError",
           "DatasetError", "TopologyMismatchError"]


class TopoError(Exception):
    """Base of every exception topo raises on purpose (``except topo.TopoError`` catches them all)."""


class ParameterError(TopoError, ValueError):
    """An argument or setting has a bad value (out of range, unknown name, conflicting options)."""


class ParameterTypeError(TopoError, TypeError):
    """An argument has the wrong type (what ``torch`` and ``scikit-learn`` raise ``TypeError`` for)."""


class TopologyError(TopoError, ValueError):
    """A topology, layer graph, history or edge list violates topo's graph invariants."""


class TopologyFormatError(TopologyError):
    """A file is truncated, corrupt, of another kind or of an unsupported version."""


class DatasetError(TopologyError):
    """A dataset is unknown, missing, or failed its checksum."""


class TopologyMismatchError(TopologyError):
    """Ranks of a distributed run hold different topologies (or values) where they must be identical.

    ``ranks`` lists the ranks that differ from the reference rank (0) and
    ``layer`` the first differing sparse layer (``None`` when the layer counts differ).
    """

    def __init__(self, message: str, ranks=(), layer=None) -> None:
        super().__init__(message)
        self.ranks, self.layer = tuple(ranks), layer

    def __reduce__(self):
        # Keep ranks/layer when the error crosses a process boundary (torch.multiprocessing).
        return (type(self), (str(self), self.ranks, self.layer))
