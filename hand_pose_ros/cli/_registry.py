"""Subcommand groups backed by a name -> module registry (``bench``, ``train``)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def add_registry_parsers(
    parser: argparse.ArgumentParser, registry: dict[str, str], dest: str,
    run: Callable[[argparse.Namespace], int], extra: Callable | None = None,
) -> None:  # fmt: skip
    """One sub-parser per registry entry; each module defines ``add_arguments(parser)``.

    The chosen module's name lands in ``args.module``; ``extra(sub)`` adds shared options.
    """
    group = parser.add_subparsers(dest=dest, metavar="NAME", required=True)
    for name, module_name in registry.items():
        module = importlib.import_module(module_name)
        sub = group.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        if extra is not None:
            extra(sub)
        module.add_arguments(sub)
        sub.set_defaults(func=run, module=module_name)
