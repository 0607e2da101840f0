"""`keras-dualobj study`: the paper's α × repetitions experiment, in miniature.

    keras-dualobj study --quick --output studies/quick     # ≤ 10 minutes on a 2-core CPU
    keras-dualobj study --output studies/default           # ≤ 60 minutes
    keras-dualobj study --paper-grid --output studies/paper  # the paper's 11 α x 8 R
    keras-dualobj study --regime paper --source text --path input.txt --output studies/regime
    keras-dualobj study --ar-fractions 0 1/2 63/64 1 --repetitions 1 16 64 \\
        --token-budget 1048576 --output studies/mine

Every cell trains the same preset, recipe and seed for the same number of steps on the
first U = C / R unique tokens, R times; all cells are evaluated on the same held-out
rows (AR loss, MD ELBO, prefix-LM loss). Rerunning a command skips finished cells and
resumes a killed one. Outputs: results.csv / results.json, plots (PNG), summary.txt.

`--regime paper` keeps the paper's tokens per parameter (C / N ~ 95 with N the
non-embedding count, U / N = C / (R N) at every R; see keras_dualobj.study.regime): it
picks the largest byte-level preset whose C fits the corpus and --budget-hours (timed
here first), prints N, C, U / N per R against the paper's and the predicted time, then
runs 5 α x 4 R x 2 seeds unless --ar-fractions / --repetitions / --seeds say otherwise.
`--seeds 0 1 2` trains every cell once per seed (tables show mean ± std).
"""

import argparse
import fractions
import sys

from keras_dualobj.cli.arguments import apply_threads
from keras_dualobj.cli.arguments import parse_fraction
from keras_dualobj.cli.recipe_flags import add_recipe_flags
from keras_dualobj.study.defaults import STUDY_DEFAULTS

# Chosen by measurement on tiny Shakespeare (see guides/repetition_study.py): at these
# budgets pure AR's held-out loss turns upward at the highest R. On a corpus too small
# for C at the smallest R (the offline fallback holds 417,077 training tokens) the
# study lowers C to the largest budget that fits, keeping every R of the grid (see
# `fit_token_budget`); a --token-budget the user gives is kept exactly.
QUICK = {
    "ar_fractions": (0.0, 0.5, 1.0),
    "repetitions": (1, 16),
    "token_budget": 2**19,
}
DEFAULT = {
    "ar_fractions": (0.0, 1 / 4, 1 / 2, 3 / 4, 15 / 16, 63 / 64, 1.0),
    "repetitions": (1, 4, 16, 64),
    "token_budget": 2**19,
}
# The paper's full grid (11 α x 8 R = 88 cells: about 3x the default grid's time).
PAPER = {
    "ar_fractions": (0, 1 / 256, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 3 / 4, 15 / 16, 63 / 64, 255 / 256, 1),
    "repetitions": (1, 2, 4, 8, 16, 32, 64, 128),
    "token_budget": 2**19,
}


# Command-line settings that are `RunSpec` fields (the recipe shared by every cell).
RECIPE_NAMES = (
    "preset", "source", "path", "tfds_name", "local_copy", "document_split", "encoding", "tokenizer",
    "vocabulary_size", "sequence_length", "batch_size", "md_variant", "ar_loss_weight",
    "z_loss_weight", "dropout", "optimizer", "learning_rate", "warmup_fraction",
    "decay_fraction", "decay_shape", "weight_decay", "clip_norm", "elbo_samples", "seed",
    "precision", "backbone_overrides",
)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "study",
        help="α × repetitions grid at a fixed token budget (tables, plots, resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid = parser.add_argument_group("grid")
    sizes = grid.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="the ≤ 10-minute grid: " + _describe(QUICK))
    sizes.add_argument("--paper-grid", action="store_true", help="the paper's grid: " + _describe(PAPER))
    sizes.add_argument("--regime", choices=("paper",), help="the paper's tokens per parameter: preset and C chosen from --budget-hours and the corpus")
    grid.add_argument("--budget-hours", type=float, default=1.0, help="with --regime: wall time the whole grid may take here (default: %(default)s)")
    grid.add_argument("--seeds", nargs="+", type=int, help="train every cell once per seed (default: --seed alone; with --regime: 0 1)")
    grid.add_argument("--ar-fractions", nargs="+", type=parse_fraction, help="α values (default: " + _describe(DEFAULT) + ")")
    grid.add_argument("--repetitions", nargs="+", type=int, help="R values")
    grid.add_argument("--token-budget", type=int, help="C, tokens per cell; steps = C / (batch x length) must be a multiple of every R (default: the grid's, lowered to fit a small corpus; one you give is kept exactly)")
    setup = parser.add_argument_group("model, data and recipe (the same in every cell)")
    # No defaults here: unset settings take the study's (`STUDY_DEFAULTS`), RunSpec's
    # (those of `keras-dualobj train`) and the preset's; see `StudyConfig`.
    add_recipe_flags(setup, RECIPE_NAMES, defaults=STUDY_DEFAULTS)
    setup.add_argument("--data-dir", help="TFDS data directory")
    setup.add_argument("--evaluations", type=int, default=8, help="held-out evaluations per cell (the curves; default: %(default)s)")
    setup.add_argument("--evaluation-batches", type=int, default=8, help="held-out batches per evaluation (default: %(default)s)")
    analysis = parser.add_argument_group("analysis (after the grid, or alone with --analyse-only)")
    analysis.add_argument("--analyse-only", action="store_true", help="train nothing: analyse the finished cells in --output (GP fit, findings, figure)")
    analysis.add_argument("--multiple-choice", action="store_true", help="score every finished cell on a held-out continuation task in the modes ar, prefix, md (the paper's PLL) and md_elbo")
    analysis.add_argument("--choice-examples", type=int, default=512, help="multiple-choice examples (default: %(default)s, 4 choices each)")
    analysis.add_argument("--choice-samples", type=int, default=4, help="MD masks per choice for the MD-mode score (default: %(default)s)")
    run = parser.add_argument_group("run")
    run.add_argument("--output", required=True, help="study folder (cells, results, plots)")
    run.add_argument("--overwrite", action="store_true", help="delete a different study in --output first")
    run.add_argument("--threads", type=int, help="compute threads of every backend, as for train (default: the backend's, one per core; on a shared machine give at most the free cores)")
    parser.set_defaults(run=run_study_command)
    return parser


def _describe(grid):
    alphas = ", ".join(str(fractions.Fraction(a).limit_denominator(1024)) for a in grid["ar_fractions"])
    repetitions = ", ".join(str(r) for r in grid["repetitions"])
    return f"α in {{{alphas}}} x R in {{{repetitions}}}, C = {grid['token_budget']:,}"


def recipe_settings(args):
    """The `RunSpec` settings given on the command line (`RECIPE_NAMES`)."""
    settings = {
        name: getattr(args, name) for name in RECIPE_NAMES if getattr(args, name, None) is not None
    }
    if "backbone_overrides" in settings:
        settings["backbone_overrides"] = dict(settings["backbone_overrides"])
    return settings


def study_config(args):
    """The `StudyConfig` of parsed arguments: `--quick` or default grid, then overrides."""
    from keras_dualobj.study import StudyConfig

    if getattr(args, "regime", None):
        from keras_dualobj.cli.study_regime import regime_grid

        grid = regime_grid(args, recipe_settings(args))
    else:
        grid = dict(QUICK if args.quick else PAPER if args.paper_grid else DEFAULT)
        grid["fit_budget"] = args.token_budget is None
    for name in ("ar_fractions", "repetitions", "token_budget"):
        if getattr(args, name) is not None:
            grid[name] = getattr(args, name)
    settings = recipe_settings(args)
    settings.update(grid.get("settings", {}))
    return StudyConfig(
        ar_fractions=tuple(grid["ar_fractions"]),
        repetitions=tuple(grid["repetitions"]),
        token_budget=grid["token_budget"],
        seeds=args.seeds if args.seeds is not None else grid.get("seeds"),
        evaluations=args.evaluations,
        evaluation_batches=args.evaluation_batches,
        data_dir=args.data_dir,
        fit_budget=grid.get("fit_budget", False),
        **settings,
    )


def run_study_command(args):
    from keras_dualobj.study import run_study
    from keras_dualobj.training.checkpoints import CheckpointWriteError
    from keras_dualobj.training.interrupts import TrainingInterrupted
    from keras_dualobj.training.interrupts import graceful_interrupts
    from keras_dualobj.training.run_lock import RunLock

    apply_threads(args)
    try:
        with RunLock(args.output), graceful_interrupts():
            if not args.analyse_only:
                run_study(study_config(args), args.output, overwrite=args.overwrite)
            finish_study(args)
    except KeyboardInterrupt as error:  # TrainingInterrupted: a checkpoint was saved
        stopped = error if isinstance(error, TrainingInterrupted) else "Interrupted."
        print(f"keras-dualobj study: {stopped} Finished cells are kept; run the same "
              "command again to resume.", file=sys.stderr)
        return 130
    except CheckpointWriteError as error:
        print(f"keras-dualobj study: error: {error}", file=sys.stderr)
        return 1
    return 0


def finish_study(args, stream=None):
    """Measures the held-out PLL of cells whose results predate it, scores the cells on
    the multiple-choice task (`--multiple-choice`), then writes the GP analysis and the
    findings (`analysis.txt`, `gp_best_alpha.png`)."""
    from keras_dualobj.study.analysis import analyse_study
    from keras_dualobj.study.cell_multiple_choice import evaluate_study_cells
    from keras_dualobj.study.cell_multiple_choice import study_examples
    from keras_dualobj.study.cell_pll import fill_held_out_pll

    stream = sys.stdout if stream is None else stream
    fill_held_out_pll(args.output, stream=stream)
    if args.multiple_choice:
        examples = study_examples(args.output, num_examples=args.choice_examples)
        evaluate_study_cells(args.output, examples, num_samples=args.choice_samples, stream=stream)
    try:
        analyse_study(args.output, stream=stream)
    except ValueError as error:  # too few cells for a fit: the tables above stand
        stream.write(f"[study] no GP analysis: {error}\n")
