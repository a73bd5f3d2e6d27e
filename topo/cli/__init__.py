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
    debug = "show the full traceback of a failure (default: one line, exit code 2)"
    parser.add_argument("--debug", action="store_true", help=debug)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__name__}.{mod}").add_parser(sub)
    for command in sub.choices.values():  # also after the command: topo train ... --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..utils.signals import exit_code, stop_on_signals
    from .errors import describe
    try:
        # SIGTERM stops a command like Ctrl-C does: cleanup runs, launched ranks are stopped, exit 143.
        with stop_on_signals():
            return int(args.func(args) or 0)
    except Exception as err:
        message = describe(err)
        if message is None:
            raise  # not an expected failure: a bug, whose traceback matters
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"topo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"topo {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return exit_code(err)
