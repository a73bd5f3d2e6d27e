"""``build_report``: one self-contained HTML report plus CSV tables for a training run directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from topo.runs import RunDir
from topo.utils import atomic_write

from .._inputs import iter_topologies, resolve_epochs
from .._progress import progress_bar
from ..broido import scale_free_report
from ..degrees import degree_distribution, degree_summary, degrees
from ..drift import drift
from ..importance import evaluate_selection, importance_map, input_importance
from . import html as H
from . import plots
from ._rundir import load_run

__all__ = ["build_report", "SECTIONS", "DEFAULT_BOOTSTRAP", "parse_epochs"]

#: Section ids of the report, in order (the integration test checks each is in the DOM).
SECTIONS = ("config", "metrics", "degrees", "scale-free", "importance", "selection", "edges", "drift")
#: Bootstrap resamples per sequence in the report: p-value standard error ≈ 0.02 near p = 0.1,
#: and a Fashion-MNIST MLP report (3 epochs × 8 sequences) well inside a minute.
DEFAULT_BOOTSTRAP = 250


def parse_epochs(spec) -> list:
    """``"0,5,last"`` → ``[0.0, 5.0, "last"]`` (also ``"mid"`` and negative positions)."""
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
        if not items:
            raise ValueError(f"epochs {spec!r} names no epoch")
        out = []
        for s in items:
            if s.lower() in ("last", "mid", "middle"):
                out.append(s.lower())
            else:
                try:
                    out.append(float(s))
                except ValueError:
                    raise ValueError(f"epoch {s!r} in {spec!r} is neither a number nor last/mid") from None
        return out
    return list(spec)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        f.write(df.to_csv(index=False, float_format="%.10g").encode("utf-8"))


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v if isinstance(v, str) else json.dumps(v)))
    return rows


def _dataset(name: str | None, n_features: int):
    """``(image_shape, (X_train, y_train, X_test, y_test) or None, why-not)`` from the local cache only."""
    if not name:
        return None, None, f"{RunDir.CONFIG} names no dataset"
    try:
        from topo import datasets

        shape = datasets.info(name).image_shape
    except (ImportError, OSError, ValueError, RuntimeError) as err:
        return None, None, f"dataset {name!r} is unknown here ({err})"
    try:
        Xtr, ytr = datasets.load(name, "train", download=False)
        Xte, yte = datasets.load(name, "test", download=False)
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return shape, None, (f"dataset {name!r} is not available locally ({first}); "
                             f"`topo datasets fetch {name}` gets it")
    if Xtr.shape[1] != n_features:
        return None, None, f"dataset {name!r} has {Xtr.shape[1]} features but the network has {n_features} inputs"
    return shape, (Xtr.numpy(), ytr.numpy(), Xte.numpy(), yte.numpy()), ""


def _scale_free_summary(sf: pd.DataFrame) -> list[str]:
    """The headline verdict and a per-epoch table of counts and Broido–Clauset categories."""
    ok = sf[sf["error"] == ""]
    later = ok[ok["epoch"] > 0]
    n_plaus = int(later["scale_free"].sum())
    n_later = int((sf["epoch"] > 0).sum())
    if n_later == 0:
        cls, text = "maybe", "Only epoch 0 was tested."
    elif len(later) == 0:
        cls = "maybe"
        text = (f"None of the {n_later} degree sequences of the evolved epochs could be tested "
                f"({sf[sf['epoch'] > 0]['error'].iloc[0]}).")
    elif n_plaus == 0:
        cls = "no"
        text = (f"Not scale-free: none of the {len(later)} degree sequences of the evolved epochs is a "
                f"plausible power law (bootstrap p > 0.1, tail ≥ 50 values, no alternative favoured, "
                f"tail spanning at least a decade).")
    else:
        cats = later.groupby("epoch")["bc_category"].first()
        cls = "yes" if cats.isin(["Strong", "Strongest"]).any() else "maybe"
        text = (f"{n_plaus} of {len(later)} degree sequences of the evolved epochs are plausible power laws; "
                "Broido–Clauset category by epoch: " + ", ".join(f"{e:g}: {c}" for e, c in cats.items()) + ".")
    rows = []
    for epoch, grp in sf.groupby("epoch", sort=True):
        fitted = grp[grp["error"] == ""]
        rows.append({"epoch": f"{epoch:g}" + (" (ER start)" if epoch == 0 else ""), "sequences": len(grp),
                     "fitted": len(fitted), "plausible (CSN)": int(fitted["plausible"].sum()),
                     "scale-free": int(fitted["scale_free"].sum()),
                     "Broido–Clauset (all fitted)": grp["bc_category"].iloc[0],
                     "dropped by their pipeline": int((grp["bc_exclusion"] != "").sum()),
                     "Broido–Clauset (kept only)": grp["bc_category_kept"].iloc[0]})
    return [f'<div class="verdict {cls}">{H.esc(text)}</div>', H.table(pd.DataFrame(rows))]


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 epochs: str | Sequence = "0,mid,last", bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 k: int = 50, max_train: int | None = 10000, progress=None) -> Path:
    """Analyse a run directory and write ``report.html`` plus ``degrees.csv``, ``scale_free.csv``,
    ``importance.csv`` and ``drift.csv`` beside it (by default in the run directory).

    Parameters
    ----------
    run_dir : path
        Written by ``topo train`` (``config.json``, ``metrics.csv``, ``history.npz``).
    out : path, optional
        HTML file (default ``RUN_DIR/report.html``; a directory gets ``report.html`` inside). The CSV
        tables go into the same directory, and nothing else is written: with ``out`` elsewhere the run
        directory is only read. A run's own files (``RunDir.FILES``, its manifest and lock) are never
        written over.
    epochs : str or sequence
        Epochs for degree plots and scale-free tests, e.g. ``"0,5,last"``
        (also ``"mid"``); epoch 0 is always included.
    bootstrap : int
        Bootstrap resamples per degree sequence (see :func:`analysis.scale_free`).
    k, max_train : int
        Feature-selection evaluation: features kept; training rows used (None: all).
    progress : bool or callable, optional
        ``True``: a tqdm bar on a terminal; a callable gets a label per step.

    Returns
    -------
    pathlib.Path
        The HTML file. Every file is written atomically.
    """
    t_start = time.perf_counter()
    run = load_run(run_dir)
    h = run.history
    out = Path(out) if out is not None else run.path / "report.html"
    if out.is_dir():
        out = out / "report.html"
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write the report to {str(out)!r}: directory {str(out.parent)!r} "
                                "does not exist")
    _refuse_run_files(out, run.path)
    wanted = sorted(set(resolve_epochs(h, parse_epochs(epochs))) | {0.0})
    tops = dict(iter_topologies(h, wanted))
    n_seq = 2 * h.num_layers * len(tops)
    with progress_bar(progress, total=n_seq + 6, desc="topo report") as tick:
        deg = degrees(tops)
        dist = degree_distribution(deg)
        summary = degree_summary(deg)
        tick("degrees")
        sf = scale_free_report(tops, bootstrap=bootstrap, seed=seed, progress=tick)
        last = h.final
        imp = input_importance(last, by="degree")
        weighted = last.layers[0].weight is not None
        imp_s = input_importance(last, by="strength") if weighted else None
        tick("importance")
        n_features = h.initial.sizes[0]
        shape, data, why = _dataset(run.config.get("dataset"), n_features)
        if shape is None or int(np.prod(shape)) != n_features:
            shape = _config_shape(run.config, n_features)
        sel = None
        if data is not None:
            Xtr, ytr, Xte, yte = data
            kk = min(k, n_features)
            sel = evaluate_selection(Xtr, ytr, imp, k=kk, seed=seed, X_test=Xte, y_test=yte, max_train=max_train)
            if imp_s is not None:
                sel_s = evaluate_selection(Xtr, ytr, imp_s, k=kk, seed=seed, X_test=Xte, y_test=yte,
                                           max_train=max_train, baselines=False)
                sel = pd.concat([sel.iloc[:1], sel_s, sel.iloc[1:]], ignore_index=True)
        tick("selection")
        dr = drift(h)
        tick("drift")

        sections = _sections(run, wanted, dist, summary, sf, imp, imp_s, shape, why, sel, dr, tops)
        tick("plots")
        importance = imp.rename(columns={"score": "degree", "rank": "degree_rank"})
        if imp_s is not None:
            importance = importance.merge(imp_s.rename(columns={"score": "strength", "rank": "strength_rank"}),
                                          on="feature")
        importance.insert(0, "epoch", h.epochs[-1])
        for name, df in (("degrees.csv", deg), ("scale_free.csv", sf), ("importance.csv", importance),
                         ("drift.csv", dr)):
            _write_csv(df, out.parent / name)
        subtitle = (f"{run.path.resolve()} · sizes {list(h.initial.sizes)} · epochs {h.epochs[0]:g}–{h.epochs[-1]:g}"
                    f" · built in {time.perf_counter() - t_start:.1f} s")
        doc = H.page(f"topo report: {run.path.name}", subtitle, sections)
        with atomic_write(out, "wb") as f:
            f.write(doc.encode("utf-8"))
        tick("written")
    return out


def _refuse_run_files(out: Path, run_path: Path) -> None:
    """The report and its tables never replace a file of a run (this one or any other)."""
    protected = set(RunDir.FILES) | {RunDir.MANIFEST, RunDir.LOCK}
    in_a_run = out.parent.resolve() == run_path.resolve() or RunDir(out.parent).holds_run
    if in_a_run and out.name in protected:
        raise ValueError(f"refusing to write the report to {str(out)!r}: {out.name} is a file of the run in "
                         f"{str(out.parent)!r}; choose another --out (e.g. {str(out.parent / 'report.html')!r})")


def _sections(run, wanted, dist, summary, sf, imp, imp_s, shape, why, sel, dr, tops) -> list[H.Section]:
    h = run.history
    secs = []
    s = H.Section("config", "Run configuration")
    if run.config:
        s.add(H.table(pd.DataFrame(_flatten(run.config), columns=["setting", "value"]).astype(str)))
    else:
        s.add(H.note(f"No {RunDir.CONFIG} in this run directory."))
    secs.append(s)

    s = H.Section("metrics", "Training curves")
    fig = plots.metrics_figure(run.metrics)
    s.add(H.image(plots.png(fig) if fig is not None else None, "loss, accuracy and edges per epoch"))
    s.add(H.table(run.metrics))
    secs.append(s)

    s = H.Section("degrees", "Degree distributions")
    s.add(H.note("Layer k joins neuron layer k to k+1. 'out': out-degree of its input-side neurons; "
                 "'in': in-degree of its output-side neurons. Curves: P(K ≥ k) on log-log axes at epochs "
                 + ", ".join(f"{e:g}" for e in wanted) + "; dashed grey: an Erdős–Rényi layer with the "
                 "epoch-0 edge count; dotted: the fitted power-law tail. Degree-0 neurons cannot appear on "
                 "log axes and are counted in the legend."))
    for k, g in enumerate(h.initial.layers):
        edges = {e: t.layers[k].num_edges for e, t in tops.items()}
        fits = sf[sf["error"] == ""] if "alpha" in sf else None
        s.add(f"<h3>Layer {k} ({g.n_in} → {g.n_out})</h3>")
        s.add(H.image(plots.png(plots.degree_figure(dist, k, (g.n_in, g.n_out), edges, fits)),
                      f"degree CCDF of layer {k}"))
    s.add("<h3>Summary</h3>")
    s.add(H.table(summary))
    secs.append(s)

    s = H.Section("scale-free", "Scale-free tests")
    for part in _scale_free_summary(sf):
        s.add(part)
    s.add(H.note("Clauset–Shalizi–Newman: discrete power law fitted above xmin (minimal KS distance), "
                 f"bootstrap p-value ({int(sf['bootstrap'].max()) if 'bootstrap' in sf else 0} resamples; "
                 "p ≤ 0.1 rejects), likelihood-ratio tests against exponential, log-normal, stretched "
                 "exponential and truncated power law (verdict at p ≤ 0.1). 'plausible' (Clauset et al.) needs "
                 "p > 0.1, n_tail ≥ 50 and no alternative favoured; 'scale_free' also needs a tail spanning "
                 "at least a decade (span = "
                 "largest degree / xmin ≥ 10): the far tail of an Erdős–Rényi layer is often a steep power "
                 "law over a factor of about 1.3, which the other tests cannot reject on so few values. "
                 "Broido–Clauset categories are computed per epoch over all layers and sides; their pipeline "
                 "would drop sequences with mean degree < 2 or > √n."))
    cols = ["epoch", "layer", "side", "n", "zeros", "mean_degree", "alpha", "xmin", "n_tail", "span",
            "ks_distance", "p_value", "plausible", "scale_free"] + [c for c in sf.columns if c.endswith("_verdict")] + \
        ["bc_exclusion", "verdict"]
    s.add(H.table(sf[[c for c in cols if c in sf.columns]]))
    secs.append(s)

    s = H.Section("importance", "Input importance")
    e_last = h.epochs[-1]
    if shape is not None:
        # The SET paper's MNIST figure: the inputs' (an RBM's visible neurons') degrees over the evolution.
        shown = sorted(tops)
        if len(shown) > 5:
            shown = list(dict.fromkeys(shown[round(i * (len(shown) - 1) / 4)] for i in range(5)))
        strip = [(f"epoch {e:g}", importance_map(tops[e], shape, by="degree")) for e in shown]
        s.add(H.note(f"Out-degree of each input neuron of layer 0 (an RBM's visible neurons) at epochs "
                     f"{', '.join(f'{e:g}' for e in shown)}, as the {shape[0]}×{shape[1]} input image: where "
                     "the evolution concentrates the connections."))
        s.add(H.image(plots.png(plots.importance_figure(maps=strip)), "input degree over epochs"))
        maps = [("degree, epoch 0 (ER)", importance_map(tops[0.0], shape, by="degree")),
                (f"degree, epoch {e_last:g}", importance_map(imp, shape))]
        if imp_s is not None:
            maps.append((f"strength Σ|w|, epoch {e_last:g}", importance_map(imp_s, shape)))
        s.add(H.note(f"Out-degree (and strength) of each input neuron in layer 0, laid out as the "
                     f"{shape[0]}×{shape[1]} input image."))
        s.add(H.image(plots.png(plots.importance_figure(maps=maps)), "input importance heat maps"))
    else:
        bars = [(f"degree, epoch {e_last:g}", imp)] + ([(f"strength, epoch {e_last:g}", imp_s)] if imp_s is not None
                                                       else [])
        s.add(H.note("Top input features by out-degree (and strength) in layer 0; no image shape is known."))
        s.add(H.image(plots.png(plots.importance_figure(bars=bars)), "ranked input importance"))
    s.add(H.table(imp.head(20)))
    secs.append(s)

    s = H.Section("selection", "Feature selection")
    if sel is None:
        s.add(H.para(f"Not evaluated: {why}.", "warn"))
    else:
        s.add(H.note(f"QuickSelection-style: ExtraTrees (50 trees) trained on the top-k features of each "
                     f"selection ({int(sel['n_train'].iloc[0])} training rows), accuracy on the test split "
                     f"({int(sel['n_test'].iloc[0])} rows)."))
        s.add(H.image(plots.png(plots.selection_figure(sel)), "selection accuracy"))
        s.add(H.table(sel.drop(columns=["features"])))
    secs.append(s)

    s = H.Section("edges", "Edges per layer")
    frame = h.frame()
    s.add(H.note("Edge count of each layer after every update. Rules that rewire keep it flat; "
                 "density-changing rules (gradual magnitude pruning, GraNet) follow their schedule."))
    s.add(H.image(plots.png(plots.edges_figure(frame)), "edges per layer over time"))
    s.add(H.table(frame.pivot(index="epoch", columns="layer", values="num_edges")
                  .rename(columns=lambda k: f"layer {k}").reset_index()))
    secs.append(s)

    s = H.Section("drift", "Topology drift")
    s.add(H.note("Jaccard distance of each layer's edge set to the previous epoch and to epoch 0, and the "
                 "in-time over-parameterisation (ITOP) rate: distinct edges ever alive over possible edges."))
    s.add(H.image(plots.png(plots.drift_figure(dr)), "drift curves"))
    s.add(H.table(dr))
    secs.append(s)
    return secs


def _config_shape(config: dict, n_features: int):
    shape = config.get("image_shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 2 and int(np.prod(shape)) == n_features:
        return tuple(int(v) for v in shape)
    return None
