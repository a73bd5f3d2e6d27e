"""One error model: every deliberate error is a TopoError and also the builtin torch / scikit-learn raise.

Bad parameter values raise ParameterError (a ValueError), wrong types ParameterTypeError (a TypeError),
broken graph invariants TopologyError (a ValueError); file and dataset errors stay TopologyErrors.
"""

import numpy as np
import pytest
import torch

import topo
from topo.errors import (
    DatasetError,
    ParameterError,
    ParameterTypeError,
    TopoError,
    TopologyError,
    TopologyFormatError,
    TopologyMismatchError,
)


def test_hierarchy():
    assert issubclass(ParameterError, TopoError) and issubclass(ParameterError, ValueError)
    assert issubclass(ParameterTypeError, TopoError) and issubclass(ParameterTypeError, TypeError)
    assert not issubclass(ParameterTypeError, ValueError) and not issubclass(ParameterError, TopologyError)
    assert issubclass(TopologyError, TopoError) and issubclass(TopologyError, ValueError)
    for cls in (TopologyFormatError, DatasetError, TopologyMismatchError):
        assert issubclass(cls, TopologyError)
    assert issubclass(topo.nn.BackendUnavailableError, ParameterError)
    assert issubclass(topo.nn.BackendUnavailableError, ImportError)
    assert topo.TopoError is TopoError and topo.ParameterError is ParameterError
    assert topo.ParameterTypeError is ParameterTypeError


def _model():
    return topo.compile(topo.erdos_renyi([6, 5, 3], epsilon=2, seed=0), seed=0)


PARAMETER_ERRORS = {
    "lr must be positive": lambda: topo.Trainer(_model(), lr=-1.0).fit((torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))),
    "zeta out of [0, 1]": lambda: topo.rules.SET(zeta=1.5),
    "unknown rule": lambda: topo.rules.from_name("no-such-rule"),
    "unknown activation": lambda: topo.compile(topo.erdos_renyi([4, 3, 2], density=0.5, seed=0), activation="no"),
    "unknown backend": lambda: topo.nn.SparseLinear(4, 3, density=0.5, backend="fortran"),
    "epsilon and density both": lambda: topo.erdos_renyi([4, 3], epsilon=1, density=0.5),
    "density above 1": lambda: topo.erdos_renyi([4, 3], density=1.5),
    "size zero": lambda: topo.erdos_renyi([4, 0], density=0.5),
    "dropout 1": lambda: topo.estimate_memory([4, 3], density=0.5, dropout=1.0),
    "unknown init": lambda: topo.nn.init_values(3, 2, 2, 3, "glorot-ish", torch.Generator(), torch.float32),
    "bad schedule": lambda: topo.rules.Schedule(stop_at=2.0),
    "epoch not in history": lambda: topo.History(topo.erdos_renyi([4, 3], density=0.5, seed=0)).topology(7),
    "export layer out of range": lambda: topo.io.write_edgelist_csv(topo.erdos_renyi([4, 3], density=0.5, seed=0),
                                                                    "/nonexistent/x.csv", layers=[3]),
}

TYPE_ERRORS = {
    "rule name not a string": lambda: topo.rules.from_name(3),
    "seed of the wrong type": lambda: topo.erdos_renyi([4, 3], density=0.5, seed="zero"),
    "SparseLinear from a list": lambda: topo.nn.SparseLinear.from_layer_graph([1, 2]),
    "Rule with a non-criterion": lambda: topo.rules.Rule(prune="magnitude", grow=topo.rules.RandomGrow()),
    "rule applied to a tensor": lambda: topo.rules.SET()(torch.zeros(3)),
    "Evolver of a non-module": lambda: topo.Evolver("model", "set"),
    "write_gexf of a dict": lambda: topo.io.write_gexf({}, "/nonexistent/x.gexf"),
    "History of a list": lambda: topo.History([]),
}

TOPOLOGY_ERRORS = {
    "duplicate edge": lambda: topo.from_edges([3, 2], [([0, 0], [1, 1])]),
    "index out of range": lambda: topo.from_edges([3, 2], [([5], [0])]),
    "layers that do not chain": lambda: topo.Topology([topo.LayerGraph(3, 2, [0], [0]),
                                                       topo.LayerGraph(3, 2, [0], [0])]),
    "weights not aligned": lambda: topo.LayerGraph(3, 2, [0, 1], [0, 1], torch.ones(3)),
    "death of a dead edge": lambda: topo.History(topo.from_edges([2, 2], [([0], [0])])).record(
        1, [topo.LayerChange(births=[[1], [1]], deaths=[[1], [0]])]),
}


@pytest.mark.parametrize("case", sorted(PARAMETER_ERRORS))
def test_bad_parameter_values_raise_parameter_errors(case):
    with pytest.raises(ParameterError) as info:
        PARAMETER_ERRORS[case]()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TopoError)
    assert not isinstance(info.value, TopologyError), "a bad setting is not a broken graph invariant"


@pytest.mark.parametrize("case", sorted(TYPE_ERRORS))
def test_wrong_types_raise_type_errors(case):
    with pytest.raises(ParameterTypeError) as info:
        TYPE_ERRORS[case]()
    assert isinstance(info.value, TypeError) and isinstance(info.value, TopoError)


@pytest.mark.parametrize("case", sorted(TOPOLOGY_ERRORS))
def test_broken_graph_invariants_raise_topology_errors(case):
    with pytest.raises(TopologyError) as info:
        TOPOLOGY_ERRORS[case]()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TopoError)


def test_file_errors_stay_topology_format_errors(tmp_path):
    bad = tmp_path / "t.npz"
    np.savez(bad, __format__=np.array("topo.topology"), __version__=np.array(1), sizes=np.array([3, 0]))
    with pytest.raises(TopologyFormatError):
        topo.load(bad)
    with pytest.raises(DatasetError):
        topo.datasets.info("no-such-dataset")


def test_cli_reports_parameter_errors_cleanly(tmp_path, capsys):
    from topo.cli import main

    assert main(["train", "--dataset", "digits", "--lr", "-1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("topo train: error:") and "lr" in err and "Traceback" not in err
