"""``topo report RUN_DIR``: the HTML analysis report of a training run (implemented in ``analysis``)."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write an HTML analysis report (degrees, scale-free tests, importance, "
                                      "drift) and CSV tables for a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by topo train")
    p.add_argument("--out", metavar="FILE", help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--epochs", default="0,mid,last",
                   help="epochs for degree plots and scale-free tests, e.g. 0,5,last (default: 0,mid,last; "
                        "epoch 0 is always included)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help="bootstrap resamples per degree sequence for the power-law p-value (default: 250)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the selection baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    # topo never imports analysis at module level: the dependency points the other way
    from analysis.report import DEFAULT_BOOTSTRAP, build_report

    bootstrap = DEFAULT_BOOTSTRAP if args.bootstrap is None else args.bootstrap
    if bootstrap < 0:
        from ..errors import ParameterError
        raise ParameterError(f"--bootstrap must be >= 0, got {bootstrap}")
    try:
        path = build_report(args.run_dir, args.out, epochs=args.epochs, bootstrap=bootstrap, seed=args.seed,
                            progress=not args.quiet)
    except ValueError as err:
        print(f"topo report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
