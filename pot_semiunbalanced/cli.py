"""Command line: ``pot-semiunbalanced <command> ...`` — a thin layer over library functions.

Each command lives next to the code it runs and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed arguments, returning
an exit status). This module only collects them.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

# (module, attribute) of each command's ``register`` function
COMMANDS = [
    ("pot_semiunbalanced.imaging.commands", "register"),
    ("pot_semiunbalanced.experiments.denoising_commands", "register"),
    ("pot_semiunbalanced.experiments.benchmark_commands", "register"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pot-semiunbalanced",
        description="Semi-unbalanced optimal transport patch priors for image restoration.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log solver details")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for module, attr in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # command not shipped in this version
                continue
            raise
        getattr(mod, attr)(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:  # user errors: one clear line, no traceback
        print(f"pot-semiunbalanced: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
