"""Registries: one table per extension point, read by validation, the CLI help and the docs.

The recipes of docs/architecture.md ("How to add a rule / exporter / backend / activation") are run as written,
then used through ``topo train`` and ``topo export`` in-process.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import topo
from topo.cli import main
from topo.cli.factory import rule_names
from topo.errors import ParameterError, ParameterTypeError
from topo.rules.base import count_for
from topo.utils.registry import Registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
TOYS = {"rule": ("toy", topo.rules.RULES), "exporter": ("in-degrees", topo.io.EXPORTERS),
        "backend": ("masked-dense", topo.nn.BACKENDS), "activation": ("softplus", topo.nn.ACTIVATIONS)}


def _recipes() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Extension points"):]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def toys():
    """Run the docs' recipes; unregister what they added afterwards (the tables are process-wide)."""
    namespace: dict = {}
    try:
        for code in _recipes():
            exec(compile(code, str(DOC), "exec"), namespace)
        yield namespace
    finally:
        for name, table in TOYS.values():
            if name in table:
                table.unregister(name)


def test_the_docs_hold_a_recipe_per_extension_point():
    recipes = _recipes()
    assert len(recipes) == 4
    for call in ("topo.rules.register(", "topo.io.register_exporter(", "register_backend(",
                 "topo.nn.register_activation("):
        assert sum(call in r for r in recipes) == 1, call


def test_recipes_register_entries_known_everywhere(toys):
    assert topo.rules.from_name("toy").name == "toy" and "toy" in topo.rules.names()
    assert "toy" in rule_names()
    assert topo.nn.backends.check_backend("masked-dense") == "masked-dense"
    assert "masked-dense" in topo.nn.backend_names()
    assert isinstance(topo.nn.make_activation("softplus"), torch.nn.Softplus)
    # The CLI help is built from the same tables.
    parser = topo.cli.build_parser()
    train_help = parser._subparsers._group_actions[0].choices["train"].format_help()
    export_help = parser._subparsers._group_actions[0].choices["export"].format_help()
    for name in ("toy", "masked-dense", "softplus"):
        assert name in train_help.replace("\n", " ").replace("  ", " "), name
    assert "in-degrees" in export_help
    # The toy backend computes what the csr backend computes, gradients included, and its memory model counts.
    lin = topo.nn.SparseLinear(12, 7, density=0.4, seed=0, backend="masked-dense")
    ref = topo.nn.SparseLinear(12, 7, density=0.4, seed=0, backend="csr")
    x = torch.randn(5, 12)
    lin(x).square().sum().backward()
    ref(x).square().sum().backward()
    assert torch.allclose(lin.weight.grad, ref.weight.grad, atol=1e-5)
    est = topo.estimate_memory([50, 40, 3], density=0.5, backend="masked-dense", evolve=False)
    est_csr = topo.estimate_memory([50, 40, 3], density=0.5, backend="csr", evolve=False)
    assert est.indices < est_csr.indices and est.workspace > est_csr.workspace


def test_toy_rule_backend_and_activation_train_through_topo_train(toys, tmp_path, monkeypatch):
    calls = {"forward": 0, "activation": 0}
    forward, act = toys["masked_dense"], torch.nn.Softplus

    def counted_forward(layer, x):
        calls["forward"] += 1
        return forward(layer, x)

    def counted_activation():
        calls["activation"] += 1
        return act()

    topo.nn.register_backend("masked-dense", counted_forward, replace=True,
                             memory=topo.nn.get_backend("masked-dense").memory)
    topo.nn.register_activation("softplus", counted_activation, replace=True)
    run = tmp_path / "toy"
    assert main(["train", "--dataset", "digits", "--hidden", "20", "--epsilon", "3", "--epochs", "3",
                 "--rule", "toy", "--backend", "masked-dense", "--activation", "softplus", "--quiet",
                 "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["rule"] == "toy" and config["backend"] == "masked-dense" and config["zeta"] == 0.5
    assert calls["forward"] > 0 and calls["activation"] == 1
    # The toy rule rewired zeta = 0.5 of every layer after epochs 1 and 2 (random prune + random growth).
    h = topo.History.load(run / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0]
    for e in (1.0, 2.0):
        for k, change in enumerate(h.changes(e)):
            n = h.topology(e - 1)[k].num_edges
            assert change.deaths.shape[1] == change.births.shape[1] == count_for(0.5, n)

    # ... and the toy exporter writes the run's final topology through topo export.
    out = tmp_path / "deg.txt"
    assert main(["export", str(run), "--format", "in-degrees", "--out", str(out)]) == 0
    final = topo.load(run / "topology.npz")
    lines = out.read_text().splitlines()
    assert len(lines) == len(final)
    for line, g in zip(lines, final.layers):
        assert np.array_equal(np.array(line.split(), dtype=np.int64), g.in_degree().numpy())
    assert main(["export", str(run), "--format", "in-degrees", "--layers", "1", "--out", str(out)]) == 0
    assert out.read_text().split() == [str(int(d)) for d in final[1].in_degree()]


def test_unknown_and_duplicate_names_are_parameter_errors(toys):
    with pytest.raises(ParameterError, match="unknown rule 'nope'.*'toy'"):
        topo.rules.from_name("nope")
    with pytest.raises(ParameterError, match="already registered"):
        topo.rules.register("toy", toys["toy_rule"])
    with pytest.raises(ParameterError, match="unknown backend 'nope'"):
        topo.nn.SparseLinear(4, 3, density=0.5, backend="nope")
    with pytest.raises(ParameterError, match="unknown activation 'nope'.*'softplus'"):
        topo.nn.make_activation("nope")
    with pytest.raises(ParameterError, match="unknown export format"):
        topo.io.export(topo.erdos_renyi([3, 2], density=0.5, seed=0), "x", "nope")
    with pytest.raises(ParameterTypeError, match="exports a History"):
        topo.io.export(topo.erdos_renyi([3, 2], density=0.5, seed=0), "x", "gexf-dynamic")
    with pytest.raises(ParameterError, match="lower case"):
        topo.rules.register("Toy2", toys["toy_rule"])
    with pytest.raises(ParameterError, match="'\\+'"):
        topo.rules.register("a+b", toys["toy_rule"])
    with pytest.raises(ParameterError, match="auto"):
        topo.nn.register_backend("auto", toys["masked_dense"])
    with pytest.raises(ParameterTypeError):
        topo.io.register_exporter("x", "not callable")


def test_custom_prune_and_grow_criteria_combine_by_name():
    class KeepFirst(topo.rules.PruneCriterion):
        """Prunes the edges of lowest key (a deterministic toy)."""

        def __init__(self, zeta):
            self.zeta = zeta

        def __call__(self, graph, zeta, context):
            return torch.arange(count_for(zeta, graph.num_edges))

    topo.rules.register_prune("lowest-key", KeepFirst)
    try:
        rule = topo.rules.from_name("lowest-key+random", 0.25)
        assert rule.name == "lowest-key+random" and isinstance(rule.prune, KeepFirst)
        g = topo.erdos_renyi([10, 8], density=0.5, seed=0)[0]
        r = rule(g.with_weight(torch.ones(g.num_edges)), 0)
        assert torch.equal(r.deaths, torch.stack([g.src[:10], g.dst[:10]]))
    finally:
        topo.rules.PRUNE.unregister("lowest-key")


def test_every_built_in_name_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    for table in (topo.rules.RULES, topo.rules.PRUNE, topo.rules.GROW, topo.nn.BACKENDS, topo.nn.ACTIVATIONS,
                  topo.io.EXPORTERS):
        for name in table.names():
            assert f"`{name}`" in doc, (table, name)


def test_registry_basics():
    r: Registry = Registry("colour")
    r.register("red", 1, help="warm")
    assert r.names() == ("red",) and "RED " in r and r.get(" Red") == 1 and len(r) == 1
    assert r.describe() == "red: warm"
    with pytest.raises(ParameterTypeError):
        r.get(3)
    assert r.unregister("red") == 1 and "red" not in r
