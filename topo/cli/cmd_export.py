"""``topo export``: a run directory, topology or history as GEXF (static or timeline), GraphML or CSV.

The formats are the entries of :data:`topo.io.EXPORTERS` (``topo.io.register_exporter`` adds one).
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    from ..io.exporters import EXPORTERS

    formats = "; ".join(f"{name}: {EXPORTERS.help(name)}" for name in EXPORTERS.names())
    p = sub.add_parser(
        "export", help="export a topology or its evolution to GEXF (Gephi), GraphML or CSV",
        description="Export RUN_DIR_OR_FILE (a run directory, a topology .npz or a history .npz). "
                    "gexf-dynamic writes the whole evolution for Gephi's timeline and needs a history; "
                    "the other formats write one topology: --epoch N of the history, else the run's "
                    "final topology (its files are verified against the run's manifest). onnx writes the run's "
                    "model file, made dense, for ONNX runtimes (needs the [onnx] extra).")
    p.add_argument("source", metavar="RUN_DIR_OR_FILE")
    p.add_argument("--format", required=True, choices=EXPORTERS.names(), metavar="FORMAT",
                   help=f"output format ({formats})")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write (replaced atomically)")
    p.add_argument("--layers", metavar="K[,K...]", help="bipartite layers to export, e.g. 0,1 (default all)")
    p.add_argument("--epoch", metavar="N", help="export the topology at history epoch N ('last', -1 allowed)")
    p.add_argument("--no-weights", action="store_true",
                   help="leave weights out (GEXF; Gephi drops edges of weight exactly 0 on import)")
    p.add_argument("--viz", choices=("gexf", "viz", "none"), default="gexf",
                   help="GEXF node positions: in the GEXF namespace (valid per gexf.xsd, default), in the "
                        "viz namespace (valid per gexf.rng), or none")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import TopoError

    if _takes(args.format) == "model":
        return _export_model(args)
    try:
        layers = _parse_layers(args.layers)
        kind, obj = _load(Path(args.source), args.format, args.epoch)
        n = _write(args, obj, layers)
    except (TopoError, OSError) as err:
        # OSError covers what main() does not: IsADirectoryError, a full disk, a read-only target.
        print(f"topo export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.format}, {n} from {kind})")
    return 0


def _export_model(args) -> int:
    """The run's model (or a model file) in a model format, e.g. ONNX: the dense twin of its sparse layers."""
    from ..errors import TopoError
    from ..io.exporters import export
    from ..nn.model_file import load_model

    if args.layers is not None or args.epoch is not None:
        print(f"topo export: error: --layers and --epoch select topologies; {args.format} exports the whole "
              "final model", file=sys.stderr)
        return 2
    try:
        model = load_model(Path(args.source))
        export(model, args.out, args.format)
    except (TopoError, OSError, ImportError) as err:
        print(f"topo export: error: {err}", file=sys.stderr)
        return 2
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out} ({args.format}, the dense form of a model with {n} parameters, from {args.source})")
    return 0


def _parse_layers(text):
    from ..errors import ParameterError

    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ParameterError(f"--layers must be comma-separated layer numbers like 0,1, got {text!r}") from None


def _format_tag(path: Path) -> str:
    import zipfile

    import numpy as np

    from ..errors import TopologyFormatError

    with open(path, "rb") as f:
        head = f.read(16)
    if not head.startswith(b"PK\x03\x04"):
        # np.load would try other formats and complain about "pickled data" for any text file.
        kind = "an empty file" if not head else f"it starts with {head!r}"
        raise TopologyFormatError(f"{str(path)!r} is not a topo .npz file (a topology or history): it is not "
                                  f"a zip archive ({kind})")
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["__format__"]) if "__format__" in z.files else ""
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise TopologyFormatError(f"{str(path)!r} is not a topo .npz file ({type(err).__name__}: {err})") from None


def _takes(fmt: str) -> str:
    from ..io.exporters import EXPORTERS

    return EXPORTERS.get(fmt).takes


def _load(src: Path, fmt: str, epoch):
    """(description, Topology or History) to export, following the run-directory layout."""
    takes = _takes(fmt)
    import topo

    from ..errors import ParameterError, TopoError, TopologyFormatError
    from ..runs import RunDir

    history = topology = None
    if src.is_dir():
        run = RunDir(src)
        hp, tp = run / RunDir.HISTORY, run / RunDir.TOPOLOGY
        if takes == "history" or epoch is not None or not tp.is_file():
            if not hp.is_file():
                need = f"{fmt} needs" if takes == "history" else "--epoch needs" if epoch is not None \
                    else f"exporting needs {RunDir.TOPOLOGY} or"
                raise FileNotFoundError(f"{need} {str(hp)!r}, which does not exist")
            history = run.read_history()
        else:
            topology = run.read_topology()
    elif src.is_file():
        if src.name in RunDir.FILES:
            RunDir(src.parent).verify(src.name)  # a run's own file: its bytes must be those the run wrote
        tag = _format_tag(src)
        if tag == "topo.history":
            history = topo.History.load(src)
        elif tag == "topo.topology":
            if takes == "history":
                raise ParameterError(f"{str(src)!r} holds one topology; {fmt} needs a history "
                                     f"(a run directory or its {RunDir.HISTORY})")
            if epoch is not None:
                raise ParameterError(f"--epoch needs a history; {str(src)!r} holds one topology")
            topology = topo.load(src)
        else:
            raise TopologyFormatError(f"{str(src)!r} holds {tag or 'no topo format tag'!r}; "
                                      "expected a topo topology or history .npz")
    else:
        raise FileNotFoundError(f"no such run directory or file: {str(src)!r}")
    if takes == "history":
        if epoch is not None:
            raise ParameterError(f"--epoch selects one topology; {fmt} exports every epoch (drop --epoch)")
        return f"{src} (history, {len(history)} epochs)", history
    if history is not None:
        try:
            e = history.resolve_epoch("last" if epoch is None else epoch)
        except TopoError:
            raise ParameterError(f"epoch {epoch!r} is not in the history of {str(src)!r}; "
                                 f"available epochs: {_list_epochs(history.epochs)}") from None
        return f"{src} (epoch {e:g})", history.topology(e)
    return str(src), topology


def _list_epochs(epochs: list[float]) -> str:
    shown = [f"{e:g}" for e in epochs]
    return ", ".join(shown if len(shown) <= 12 else shown[:5] + ["..."] + shown[-5:]) + f" ({len(shown)} in all)"


def _write(args, obj, layers) -> str:
    from ..io.exporters import export

    # Each writer takes the options it names (graphml and CSV have no weights/viz switches).
    export(obj, args.out, args.format, layers=layers, weights=not args.no_weights,
           viz=None if args.viz == "none" else args.viz)
    if _takes(args.format) == "history":
        return f"{len(obj)} epochs"
    kept = range(len(obj)) if layers is None else layers
    return f"{sum(obj[k].num_edges for k in kept)} edges"
