"""Shared by the export tests: the official GEXF schemas, graphology-gexf (node), test histories."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import topo

SHARED = Path(__file__).resolve().parents[2] / "shared"
GEXF_DIR = SHARED / "gexf-1.3"
JS_DIR = Path(__file__).resolve().parent / "js"
NO_SCHEMA = "../shared/gexf-1.3 absent: it comes with the project's shared folder"


@functools.cache
def _schema(name: str):
    from lxml import etree

    doc = etree.parse(str(GEXF_DIR / name))
    return etree.XMLSchema(doc) if name.endswith(".xsd") else etree.RelaxNG(doc)


def assert_valid(path, schema: str = "gexf.xsd") -> None:
    """Validate ``path`` against an official GEXF 1.3 schema (``gexf.xsd`` or ``gexf.rng``) with lxml."""
    from lxml import etree

    if not (GEXF_DIR / schema).is_file():
        pytest.skip(NO_SCHEMA)
    s = _schema(schema)
    ok = s.validate(etree.parse(str(path)))
    assert ok, f"{path} is not valid per {schema}: {s.error_log}"


def schema_rejects(path, schema: str) -> bool:
    from lxml import etree

    if not (GEXF_DIR / schema).is_file():
        pytest.skip(NO_SCHEMA)
    return not _schema(schema).validate(etree.parse(str(path)))


def _pinned() -> dict:
    return json.loads((JS_DIR / "package.json").read_text())["dependencies"]


def _installed_ok() -> bool:
    for name, version in _pinned().items():
        meta = JS_DIR / "node_modules" / name / "package.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("version") != version:
            return False
    return True


@functools.cache
def _ensure_graphology() -> str:
    """Path of ``node``, after installing tests/js once (cached in tests/js/node_modules, git-ignored)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not found: the graphology-gexf check needs Node.js")
    if _installed_ok():
        return node
    # Install beside the target and rename into place, so two pytest workers cannot interleave.
    tmp = Path(tempfile.mkdtemp(prefix=".npm-install-", dir=JS_DIR))
    try:
        for f in ("package.json", "package-lock.json"):
            if (JS_DIR / f).is_file():
                shutil.copy(JS_DIR / f, tmp / f)
        try:
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-progress"], cwd=tmp,
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("npm install of graphology-gexf timed out (registry unreachable?)")
        if r.returncode != 0:
            pytest.skip(f"npm install of graphology-gexf failed (offline?): {r.stderr.strip()[-300:]}")
        if (JS_DIR / "node_modules").exists() and not _installed_ok():
            shutil.rmtree(JS_DIR / "node_modules", ignore_errors=True)
        try:
            os.rename(tmp / "node_modules", JS_DIR / "node_modules")
        except OSError:
            pass  # another worker installed it first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert _installed_ok(), "graphology-gexf install did not land in tests/js/node_modules"
    return node


def graphology_parse(*paths) -> list[dict]:
    """What graphology-gexf (Gephi Lite's parser) reads from each file: see tests/js/parse_gexf.js."""
    node = _ensure_graphology()
    r = subprocess.run([node, str(JS_DIR / "parse_gexf.js"), *map(str, paths)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"graphology-gexf could not parse {paths}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def weighted(t: topo.Topology, seed: int = 0) -> topo.Topology:
    gen = torch.Generator().manual_seed(seed)
    return t.with_weights([torch.randn(g.num_edges, generator=gen) for g in t.layers])


def random_history(sizes=(5, 4, 3), epochs: int = 6, seed: int = 0, weights_at=None) -> topo.History:
    """Each epoch drops ~40% of every layer and regrows as many edges among those not alive.

    Small layers make rebirths (an edge pruned, later regrown) likely. ``weights_at``
    lists the epochs whose weights are recorded (default: all); weights are
    fresh random values, so every epoch's weight of an edge differs.
    """
    gen = torch.Generator().manual_seed(seed)
    t = weighted(topo.erdos_renyi(list(sizes), density=0.5, seed=seed), seed)
    h = topo.History(t)
    for e in range(1, epochs + 1):
        changes, ws = [], []
        for g in t.layers:
            keys = g.keys()
            m = max(1, int(0.4 * keys.numel()))
            dead = keys[torch.randperm(keys.numel(), generator=gen)[:m]]
            grow = topo.graph.sample_keys(g.n_in * g.n_out, m, gen, exclude=keys)
            changes.append(topo.LayerChange(births=torch.stack([grow % g.n_in, grow // g.n_in]),
                                            deaths=torch.stack([dead % g.n_in, dead // g.n_in])))
            ws.append(torch.randn(g.num_edges, generator=gen))
        h.record(e, changes, ws if weights_at is None or e in weights_at else None)
        t = h.topology("last")
    return h


def reference_weights(h: topo.History, offsets=None) -> dict:
    """``{(src_id, dst_id): {epoch: weight}}`` from the History itself, by brute force."""
    out: dict = {}
    for epoch, t in h:
        offs = t.offsets()
        for k, g in enumerate(t.layers):
            w = None if g.weight is None else g.weight.numpy()
            for i, (s, d) in enumerate(zip(g.src.tolist(), g.dst.tolist())):
                entry = out.setdefault((s + offs[k], d + offs[k + 1]), {})
                if w is not None:
                    entry[epoch] = float(w[i])
    return out


def expand(triples, epochs) -> dict:
    """Per-epoch values from (value, start, end) intervals [start, end)."""
    return {e: v for v, s, en in triples for e in epochs if s <= e < en}


def dense_degrees(t: topo.Topology) -> tuple[np.ndarray, np.ndarray]:
    """In/out degree of every neuron (global id order) from a dense adjacency matrix: a brute-force reference."""
    n = t.num_neurons
    A = np.zeros((n, n))
    offs = t.offsets()
    for k, g in enumerate(t.layers):
        A[offs[k] + g.src.numpy(), offs[k + 1] + g.dst.numpy()] = 1
    return A.sum(0), A.sum(1)
