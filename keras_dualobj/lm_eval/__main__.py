"""`python -m keras_dualobj.lm_eval ...`: lm-eval's own command line, with our model.

lm-eval 0.4.13 finds models only in its registry and has no plugin discovery, so its
`lm_eval` command cannot see `keras-dualobj`. This entry point registers it (by
importing `keras_dualobj.lm_eval.model`) and hands every argument to lm-eval's CLI:

    python -m keras_dualobj.lm_eval run --model keras-dualobj \\
        --model_args path=model.keras,mode=pll --tasks arc_easy --limit 10
    python -m keras_dualobj.lm_eval --help
"""

import sys


def register():
    """Registers `keras-dualobj` in lm-eval's model registry; returns the class."""
    from keras_dualobj.lm_eval.model import KerasDualLM

    return KerasDualLM


def main(argv=None):
    """Registers `keras-dualobj` and runs lm-eval's CLI on `argv` (default: sys.argv)."""
    from lm_eval.__main__ import cli_evaluate

    register()

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    sys.argv[0] = "python -m keras_dualobj.lm_eval"
    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
