"""The `keras-dualobj` command line: one subcommand per module in this package.

Each subcommand module defines `add_parser(subparsers)` (registering its arguments and
`set_defaults(run=...)`) and is listed in `SUBCOMMANDS`.
"""

import argparse
import importlib
import sys

# Module names under keras_dualobj.cli, in the order `--help` lists them.
SUBCOMMANDS = ("train", "generate", "evaluate", "study", "recommend", "convert")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-dualobj",
        description="Dual-objective (autoregressive + masked diffusion) language models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"keras_dualobj.cli.{name}").add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
