"""``topo datasets``: list the datasets and where they are, fetch and verify one."""

from __future__ import annotations

import argparse
import sys
import warnings

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list, describe and fetch the classification datasets",
                       description="List, describe and fetch the datasets of topo.datasets. Data is "
                                   "cached in $TOPO_DATA (default ~/.cache/topo) and sha256-verified.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=None, help="data cache (default: $TOPO_DATA or ~/.cache/topo)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", parents=[common],
                       help="name, status (cached/missing/...), size and source of each dataset")
    f = actions.add_parser("fetch", parents=[common],
                           help="get a dataset, verify its checksums, print where it lives")
    f.add_argument("name", help="dataset name, e.g. mnist, fashion-mnist, coil20, digits, mat:PATH")
    f.add_argument("--no-download", action="store_true", help="use local sources only (no network)")
    f.add_argument("--repair", action="store_true",
                   help="remove cached files whose sha256 is wrong and get them again (from local sources, "
                        "or downloaded unless --no-download)")
    i = actions.add_parser("info", parents=[common],
                           help="print a dataset's description (features, classes, licence, ...)")
    i.add_argument("name")
    p.set_defaults(func=run, _datasets_parser=p)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _list(args) -> int:
    from topo import datasets

    rows = [datasets.status(name, cache_dir=args.cache_dir) for name in datasets.available()]
    print(f"cache: {datasets.data_home(args.cache_dir)}")
    header = ("name", "status", "size", "location", "source")
    table = [header] + [(r.name, r.state, _human(r.size) if r.size else "-", r.location, r.source)
                        for r in rows]
    widths = [max(len(row[k]) for row in table) for k in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


def _fetch(args) -> int:
    from topo import datasets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            paths = datasets.fetch(args.name, cache_dir=args.cache_dir, download=not args.no_download,
                                   repair=args.repair)
        finally:
            for w in caught:  # what --repair removed, also when getting it again failed
                print(f"repair: {w.message}", file=sys.stderr)
    meta = datasets.info(args.name)
    if not paths:
        print(f"{meta.name}: generated on demand, nothing to fetch")
        return 0
    print(f"{meta.name}: {meta.n_train} train + {meta.n_test} test samples, "
          f"{meta.n_features} features, {meta.n_classes} classes; verified files:")
    for p in paths:
        print(f"  {p}")
    return 0


def _info(args) -> int:
    from dataclasses import asdict

    from topo import datasets

    for key, value in asdict(datasets.info(args.name)).items():
        print(f"{key:12s} {value}")
    return 0


def run(args) -> int:
    action = getattr(args, "action", None)
    if action == "list":
        return _list(args)
    if action == "fetch":
        return _fetch(args)
    if action == "info":
        return _info(args)
    args._datasets_parser.print_help()
    return 2
