"""The ``topo`` command line. Each subcommand lives in ``cmd_<name>.py`` and is found automatically."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="topo", description="Evolve, train, analyse and export sparse topologies.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"topo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__name__}.{mod}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..errors import TopoError
    try:
        return int(args.func(args) or 0)
    except (TopoError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"topo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
