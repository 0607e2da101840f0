"""The `keras-dualobj` command line: one subcommand per module in this package.

Each subcommand module defines `add_parser(subparsers)` (registering its arguments and
`set_defaults(run=...)`) and is listed in `SUBCOMMANDS`. Nothing here imports Keras: the
arguments are parsed and `KERAS_BACKEND` is checked first, so a mistyped flag answers at
once; a subcommand imports what it needs when it runs. An error in the user's input
(`ValueError`, `TypeError`, a missing file or package) is printed in one line, with the
library's parameter names turned into this subcommand's flags (`cli.arguments.in_flags`).
"""

import argparse
import importlib
import sys

from keras_dualobj.cli.arguments import check_backend
from keras_dualobj.cli.arguments import in_flags
from keras_dualobj.cli.arguments import option_flags

# Module names under keras_dualobj.cli, in the order `--help` lists them.
SUBCOMMANDS = ("train", "generate", "evaluate", "study", "recommend", "convert")
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-dualobj",
        description="Dual-objective (autoregressive + masked diffusion) language models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"keras_dualobj.cli.{name}").add_parser(subparsers)
        subparsers.choices[name].set_defaults(flags=option_flags(subparsers.choices[name]))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        check_backend()
        return args.run(args) or 0
    except USER_ERRORS as error:
        print(f"keras-dualobj {args.command}: error: {in_flags(str(error), args.flags)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
