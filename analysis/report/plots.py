"""The report's figures, drawn with matplotlib's object API (Agg canvas, no pyplot state) into PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

__all__ = ["png", "metrics_figure", "degree_figure", "importance_figure", "selection_figure", "drift_figure"]

_DPI = 90


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=_DPI, layout="constrained")


def png(fig) -> bytes:
    """Render a Figure to PNG bytes (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def metrics_figure(metrics: pd.DataFrame):
    """Loss, accuracy and edge count per epoch (whichever columns the run wrote)."""
    panels = [("loss", ["train_loss", "test_loss"]), ("accuracy", ["train_acc", "test_acc"]),
              ("edges", ["num_edges"])]
    panels = [(t, [c for c in cols if c in metrics]) for t, cols in panels]
    panels = [p for p in panels if p[1]]
    if not panels or "epoch" not in metrics or metrics.empty:
        return None
    fig = _figure(4.2 * len(panels), 3.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x = metrics["epoch"]
    for ax, (title, cols) in zip(axes, panels):
        for c in cols:
            ax.plot(x, metrics[c], marker="o", ms=3, label=c.replace("_", " "))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize=8)
    return fig


def _er_ccdf(k: np.ndarray, trials: int, p: float) -> np.ndarray:
    from scipy import stats

    return stats.binom.sf(k - 1, trials, p)


def _pl_ccdf(k: np.ndarray, alpha: float, xmin: float) -> np.ndarray:
    from .._plcore import log_hurwitz

    return np.exp(log_hurwitz(alpha, k) - log_hurwitz(alpha, xmin))


def degree_figure(dist: pd.DataFrame, layer: int, sizes: tuple[int, int], edges: dict,
                  fits: pd.DataFrame | None):
    """Log-log CCDF of one layer's out- and in-degrees at each report epoch.

    Dashed grey: the Erdős–Rényi reference with the same edge count (binomial
    degrees); dotted: the fitted power-law tail, scaled to its share of neurons.
    """
    fig = _figure(10, 3.8)
    axes = fig.subplots(1, 2)
    n_in, n_out = sizes
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for ax, side in zip(axes, ("out", "in")):
        sub = dist[(dist["layer"] == layer) & (dist["side"] == side)]
        epochs = sorted(sub["epoch"].unique())
        kmax = 1
        for i, e in enumerate(epochs):
            d = sub[(sub["epoch"] == e) & (sub["degree"] > 0)]
            if d.empty:
                continue
            c = colors[i % len(colors)]
            zeros = int(sub[(sub["epoch"] == e) & (sub["degree"] == 0)]["count"].sum())
            label = f"epoch {e:g}" + (f" ({zeros} with degree 0)" if zeros else "")
            ax.loglog(d["degree"], d["ccdf"], "o", ms=3, color=c, label=label)
            kmax = max(kmax, int(d["degree"].max()))
            m = edges.get(e)
            if m and i == 0:
                trials = n_out if side == "out" else n_in
                ks = np.arange(1, int(d["degree"].max() * 1.5) + 2)
                ref = _er_ccdf(ks, trials, m / (n_in * n_out))
                keep = ref > 1e-4
                ax.loglog(ks[keep], ref[keep], "--", color="grey", lw=1, label="Erdős–Rényi reference")
            if fits is not None:
                f = fits[(fits["epoch"] == e) & (fits["layer"] == layer) & (fits["side"] == side)]
                if len(f) and np.isfinite(f["alpha"].iloc[0]):
                    a, xmin, nt = float(f["alpha"].iloc[0]), float(f["xmin"].iloc[0]), float(f["n_tail"].iloc[0])
                    share = nt / float(d["count"].sum())
                    ks = np.arange(xmin, max(kmax, xmin + 1) + 1, dtype=np.float64)
                    y = share * _pl_ccdf(ks, a, xmin)
                    keep = y > 1e-5
                    ax.loglog(ks[keep], y[keep], ":", color=c, lw=1.5, label=f"power law α={a:.2f}, k≥{xmin:g}")
        who = "out-degree of input-side neurons" if side == "out" else "in-degree of output-side neurons"
        ax.set_title(f"layer {layer}: {who}", fontsize=10)
        ax.set_xlabel("degree k")
        ax.set_ylabel("P(K ≥ k)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def importance_figure(maps: list[tuple[str, np.ndarray]] | None = None,
                      bars: list[tuple[str, pd.DataFrame]] | None = None, top: int = 30):
    """Heat maps (image data) or ranked bar charts of the top features."""
    items = maps or bars or []
    if not items:
        return None
    fig = _figure(3.6 * len(items) if maps else 5.0 * len(items), 3.4 if maps else 3.8)
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for ax, (title, data) in zip(axes, items):
        if maps:
            im = ax.imshow(data, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        else:
            d = data.head(top)
            ax.bar(np.arange(len(d)), d["score"], color="#1f77b4")
            ax.set_xticks(np.arange(len(d)), d["feature"].astype(str), rotation=90, fontsize=7)
            ax.set_xlabel("feature (ranked)")
            ax.set_ylabel("score")
        ax.set_title(title, fontsize=10)
    return fig


def selection_figure(sel: pd.DataFrame):
    fig = _figure(5, 2.8)
    ax = fig.subplots()
    ax.barh(sel["method"], sel["accuracy"], color=["#2ca02c" if m.startswith("topo") else "#7f7f7f"
                                                   for m in sel["method"]])
    for y, v in enumerate(sel["accuracy"]):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(f"test accuracy, ExtraTrees on k={int(sel['k'].iloc[0])} features")
    ax.invert_yaxis()
    return fig


def drift_figure(dr: pd.DataFrame):
    """Jaccard distance to the previous epoch and to epoch 0, ITOP rate and turnover per layer."""
    fig = _figure(13, 3.2)
    axes = fig.subplots(1, 4)
    panels = [("jaccard_prev", "Jaccard distance to previous epoch"),
              ("jaccard_initial", "Jaccard distance to epoch 0"),
              ("itop_rate", "ITOP rate (edges ever alive / possible)")]
    for ax, (col, title) in zip(axes, panels):
        for layer, g in dr.groupby("layer"):
            ax.plot(g["epoch"], g[col], marker="o", ms=3, label=f"layer {layer}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax = axes[3]
    later = dr[dr["epoch"] > 0]
    for i, (_layer, g) in enumerate(later.groupby("layer")):
        c = f"C{i}"
        ax.plot(g["epoch"], g["births"], marker="^", ms=3, color=c)
        ax.plot(g["epoch"], g["deaths"], marker="v", ms=3, ls="--", color=c)
    ax.set_title("births (solid), deaths (dashed)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig



def edges_figure(frame: pd.DataFrame):
    """Edge count of every layer after each update (``History.frame()``): flat for SET, falling for GMP/GraNet."""
    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    for layer, g in frame.groupby("layer"):
        ax.plot(g["epoch"], g["num_edges"], marker="o", ms=3, label=f"layer {layer}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("edges")
    ax.set_title("edges per layer", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig
