"""`keras-dualobj train`: corpus → tokenizer → preset model → resumable dual training.

Example (the README's main job, a few minutes on a 2-core CPU):

    keras-dualobj train --preset small --output-dir runs/small

It prints which corpus it used and the repetition plan, a progress line with tokens/s
and both losses, held-out AR and MD losses during training, and a summary with the
final held-out losses and a sample generated each way. The output directory gets
`run.json`, checkpoints, CSV and TensorBoard logs, `model.keras`, the tokenizer and
`summary.json`. `--resume` continues a killed run from its last checkpoint and ends
with the same weights as an uninterrupted run.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

from keras_dualobj.cli.arguments import apply_threads
from keras_dualobj.cli.recipe_flags import DATA
from keras_dualobj.cli.recipe_flags import MODEL
from keras_dualobj.cli.recipe_flags import OPTIMISATION
from keras_dualobj.cli.recipe_flags import add_recipe_flags
from keras_dualobj.training.evaluation_schedule import EVALUATION_BATCHES
from keras_dualobj.training.evaluation_schedule import EVALUATIONS_PER_RUN
from keras_dualobj.training.evaluation_schedule import default_eval_every
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

RUN_FORMAT = 1
# The arguments that define a run are the fields of `RunSpec` (a `--resume` must not
# change them; their defaults live there). The others (how often to evaluate,
# checkpoint or sample) may differ between the two calls.
OPERATIONAL_DEFAULTS = {
    "eval_every": None,
    "checkpoint_every": None,
    "keep_checkpoints": 3,
    "eval_batches": EVALUATION_BATCHES,
    "sample_length": 64,
    "prompt_length": 32,
    "data_dir": None,
    "distribution": None,
    "max_steps": None,
    "threads": None,
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a dual-objective model (progress, logs, checkpoints, --resume)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Every default is None here and filled in later, so that a --resume can tell
    # what was given explicitly; --help shows the effective defaults in the text.
    add_recipe_flags(parser.add_argument_group("model"), MODEL)
    data = parser.add_argument_group("data")
    add_recipe_flags(data, [field for field in DATA if field not in ("unique_tokens", "token_budget")])
    add_recipe_flags(data.add_mutually_exclusive_group(), ["unique_tokens", "token_budget"])
    data.add_argument("--data-dir", help="TFDS data directory (default: TFDS's)")
    add_recipe_flags(parser.add_argument_group("optimisation"),
                     [field for field in OPTIMISATION if field != "log_every"])

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", required=True, help="folder of the run (checkpoints, logs, model)")
    add_recipe_flags(run, ["log_every"])
    run.add_argument("--eval-every", type=int, help=f"held-out evaluation every N steps (a multiple of --log-every; default: about {EVALUATIONS_PER_RUN} per run)")
    run.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (a multiple of --log-every; default: --eval-every)")
    run.add_argument("--keep-checkpoints", type=int, help=f"checkpoints kept on disk (default: {OPERATIONAL_DEFAULTS['keep_checkpoints']})")
    run.add_argument("--eval-batches", type=_eval_batches, help=f"held-out batches per evaluation, or 'all' (default: {EVALUATION_BATCHES} per periodic evaluation and the whole split at the end; given, the final evaluation scores these batches too)")
    run.add_argument("--sample-length", type=int, help=f"tokens generated for each summary sample (default: {OPERATIONAL_DEFAULTS['sample_length']})")
    run.add_argument("--prompt-length", type=int, help=f"prompt tokens taken from held-out text (default: {OPERATIONAL_DEFAULTS['prompt_length']})")
    run.add_argument("--distribution", help="single (default), data, data:N or model:BxM (a batch x model mesh; JAX)")
    run.add_argument("--max-steps", type=int, help="dry run: stop after this many updates, at most the plan's (the schedule keeps the full run's length)")
    run.add_argument("--threads", type=int, help="compute threads of every backend (default: the backend's, one per core; on a shared machine give at most the free cores, see docs/performance.md)")
    flags = run.add_mutually_exclusive_group()
    flags.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint")
    flags.add_argument("--overwrite", action="store_true", help="delete the run in --output-dir and start again")
    parser.set_defaults(run=run_train)
    return parser


def _explicit(args, names):
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def resolve_config(args):
    """The run's configuration: explicit arguments, else a stored run's, else defaults.

    With `--resume`, the stored configuration of the run in `--output-dir` is the
    base and an explicit argument that differs from it is an error. Defaults are
    `RunSpec`'s, then the preset's (`RunSpec.resolved`).
    """
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training.run import read_run_config

    given = _explicit(args, RunSpec.field_names())
    if "backbone_overrides" in given:
        given["backbone_overrides"] = dict(given["backbone_overrides"])
    stored = read_run_config(args.output_dir) if args.resume else None
    if stored is not None:
        conflicts = [
            f"--{name.replace('_', '-')} {value!r} (the run has {stored.get(name)!r})"
            for name, value in given.items()
            if stored.get(name) != value
        ]
        if conflicts:
            raise ValueError(
                f"--resume continues the run in {args.output_dir} as it was configured; "
                f"drop or correct: {'; '.join(conflicts)}."
            )
        return dict(stored)
    config = RunSpec(**given).resolved().to_json()
    config["format"] = RUN_FORMAT
    return config


def _operational(args):
    return dict(OPERATIONAL_DEFAULTS, **_explicit(args, OPERATIONAL_DEFAULTS))


def _final_eval_batches(args):
    """Batches of the final evaluation: `--eval-batches N` when given, else the whole split."""
    given = getattr(args, "eval_batches", None)
    return None if given in (None, "all") else given


def _eval_batches(text):
    """`--eval-batches`: a whole number >= 1, or `all` (the whole held-out split)."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'all'; received {text!r}")
    return value


def run_train(args):
    from keras_dualobj.training.checkpoints import CheckpointWriteError
    from keras_dualobj.training.interrupts import TrainingInterrupted
    from keras_dualobj.training.interrupts import graceful_interrupts
    from keras_dualobj.training.run_lock import RunLock

    apply_threads(args)
    try:
        with RunLock(args.output_dir), graceful_interrupts():
            return _run_train(args)
    except KeyboardInterrupt as error:  # TrainingInterrupted: a checkpoint was saved
        stopped = error if isinstance(error, TrainingInterrupted) else "Interrupted."
        print(f"keras-dualobj train: {stopped} Resume with: keras-dualobj train "
              f"--output-dir {args.output_dir} --resume", file=sys.stderr)
        return 130
    except CheckpointWriteError as error:
        print(f"keras-dualobj train: error: {error}", file=sys.stderr)
        return 1


def _check_early(config, options):
    """Checks that fail fast, before minutes are spent on the data (the model and
    optimizer check again)."""
    from keras_dualobj.models.dual_lm import MD_VARIANTS
    from keras_dualobj.training.distribution import check_distribution_backend
    from keras_dualobj.training.distribution import parse_distribution
    from keras_dualobj.optimization.optimizers import OPTIMIZERS
    from keras_dualobj.training.run_spec import RunSpec

    if parse_distribution(options["distribution"]).kind != "single":
        check_distribution_backend()
    if options["max_steps"] is not None:
        check_int("max_steps", options["max_steps"], minimum=1)
    RunSpec.from_json(config).micro_batch_size  # precision and accumulation

    check_float("ar_fraction", config["ar_fraction"], minimum=0.0, maximum=1.0)
    check_float("learning_rate", config["learning_rate"], minimum=0.0)
    check_choice("md_variant", config["md_variant"], MD_VARIANTS)
    check_choice("optimizer", config["optimizer"], OPTIMIZERS)


def _distribute(name, spec, vocabulary_size):
    """Sets the run's Keras distribution (none for `single`) before the model exists.

    Multi-host: with `KERAS_DISTRIBUTION_NUM_PROCESSES` (and `..._JOB_ADDRESSES`,
    `..._PROCESS_ID`) in the environment, `keras.distribution.initialize()` joins
    the processes first, so the mesh spans every host's devices.
    """
    import os

    import keras

    from keras_dualobj.models.presets import get_preset
    from keras_dualobj.training.distribution import check_batch_divides
    from keras_dualobj.training.distribution import make_distribution

    if name in (None, "single"):
        return None
    if os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES"):
        keras.distribution.initialize()
    backbone_config = dict(get_preset(spec.preset)["backbone"], **(spec.backbone_overrides or {}))
    backbone_config["vocabulary_size"] = vocabulary_size
    distribution = make_distribution(name, backbone_config=backbone_config)
    check_batch_divides(spec.micro_batch_size, distribution, "batch_size / accumulation_steps")
    keras.distribution.set_distribution(distribution)
    return distribution


def _build_run(spec, config, tokenizer, options):
    """Data, compiled model and parameter counts of the run; prints the model line."""
    import keras

    from keras_dualobj.models.presets import parameter_counts

    initial_model = None
    if spec.init is not None:
        # The saved model's own tokenizer, whatever a resumed run's folder holds.
        initial_model = spec.load_initial_model()
        tokenizer = initial_model.tokenizer
    data = spec.prepare_data(data_dir=options["data_dir"], tokenizer=tokenizer)
    _check_max_steps(options["max_steps"], data.plan)
    distribution = _distribute(
        options["distribution"], spec, int(data.tokenizer.vocabulary_size())
    )
    model = spec.build_model(tokenizer=data.tokenizer, initial_model=initial_model)
    spec.compile(model, data.plan.total_steps)
    counts = parameter_counts(model.backbone.get_config())
    accumulation = (
        f" (x{spec.accumulation_steps} micro-batches of {spec.micro_batch_size} rows)"
        if spec.accumulation_steps > 1 else ""
    )
    print(
        f"[keras_dualobj.train] {_model_origin(config)}: {counts['total']:,} parameters "
        f"({counts['non_embedding']:,} non-embedding); α = {config['ar_fraction']}; "
        f"{config['optimizer']} at peak lr {config['learning_rate']} with warmup-stable-decay "
        f"over {data.plan.total_steps:,} steps of {spec.batch_size} rows{accumulation}; "
        f"{spec.precision}; {keras.backend.backend()} backend"
        f"{'' if distribution is None else f' on {distribution}'}",
        flush=True,
    )
    return data, model, counts


def _model_origin(config):
    if config.get("init"):
        return f"{config['init']} with preset {config['preset']}'s recipe"
    return f"preset {config['preset']}"


def _as_stored(config, output_dir):
    """`config` as the run in `output_dir` would store it: when both let the plan raise
    R to fit the corpus, with the stored (raised) R, so that the same command is not
    called a different configuration."""
    from keras_dualobj.training.run import read_run_config

    stored = read_run_config(output_dir) or {}
    if stored.get("fit_repetitions") and config.get("fit_repetitions"):
        return dict(config, repetitions=stored.get("repetitions", config["repetitions"]))
    return config


def _check_max_steps(max_steps, plan):
    """`--max-steps` stops a dry run early; it cannot make the run longer than its plan
    (the steps beyond it would all train at learning rate 0)."""
    if max_steps is not None and max_steps > plan.total_steps:
        raise ValueError(
            f"--max-steps {max_steps:,} is more than the {plan.total_steps:,} steps of the "
            f"run's plan (C = {plan.total_tokens:,} tokens, set by --token-budget or "
            f"--unique-tokens x --repetitions (R = {plan.repetitions}), in steps of "
            f"--batch-size {plan.batch_size} x --sequence-length {plan.sequence_length}). "
            f"--max-steps stops a dry run early: give at most {plan.total_steps:,}, or "
            "raise --token-budget to train longer."
        )


def _fit_steps(spec, data, options, log_every, eval_every):
    """`train()`'s step arguments and data in `fit()` steps (micro-batches).

    Under accumulation a `fit()` step is one micro-batch: every count is multiplied
    by `accumulation_steps` (segments, and so checkpoints, end on whole updates) and
    the plan's batches are split into micro-batches in order.
    """
    from keras_dualobj.data import make_training_dataset

    k = spec.accumulation_steps
    updates = options["max_steps"] or data.plan.total_steps

    def dataset_fn(start_step):
        dataset = make_training_dataset(
            data.train_rows, data.plan, seed=spec.seed, start_step=start_step // k
        )
        return dataset.rebatch(spec.micro_batch_size) if k > 1 else dataset

    return {
        "train_dataset_fn": dataset_fn,
        "total_steps": updates * k,
        "tokens_per_step": spec.micro_batch_size * spec.sequence_length,
        "log_every": min(log_every, updates) * k,
        "eval_every": eval_every * k,
        "checkpoint_every": (options["checkpoint_every"] or eval_every) * k,
    }


def _run_train(args):
    started = time.perf_counter()
    config = resolve_config(args)
    options = _operational(args)
    output_dir = Path(args.output_dir)

    import keras

    from keras_dualobj.data import save_tokenizer
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training import TrainingDivergedError
    from keras_dualobj.training import check_output_dir
    from keras_dualobj.training import train
    from keras_dualobj.training.manifest import record_written

    _check_early(config, options)
    spec = RunSpec.from_json(config)
    # Refuse a foreign output directory before spending minutes on data; an
    # --overwrite deletes only in train(), once every check has passed.
    mode = check_output_dir(
        output_dir, _as_stored(config, output_dir), resume=args.resume,
        overwrite=args.overwrite, dry_run=True,
    )
    tokenizer_dir = output_dir / "tokenizer"
    tokenizer = None
    if mode == "resume" and tokenizer_dir.is_dir():
        # A retrained BPE could differ; the run's own tokenizer is authoritative.
        tokenizer = str(tokenizer_dir)
    data, model, counts = _build_run(spec, config, tokenizer, options)
    if mode == "new":
        # run.json records the plan run: R as raised to fit the corpus (a resumed
        # run keeps what its run.json says, which plans the same R again).
        config = dict(config, repetitions=data.plan.repetitions)
    total_steps = options["max_steps"] or data.plan.total_steps
    log_every = min(config["log_every"], total_steps)
    eval_every = options["eval_every"] or default_eval_every(total_steps, log_every)

    class SaveTokenizer(keras.callbacks.Callback):
        # Saved once the run owns the folder (train() has checked it and written
        # run.json), before any step, so a resumed run reuses this exact tokenizer.
        def on_train_begin(self, logs=None):
            if not tokenizer_dir.is_dir():
                record_written(output_dir, files=[tokenizer_dir])
                save_tokenizer(data.tokenizer, tokenizer_dir)

    try:
        result = train(
            model,
            output_dir=output_dir,
            validation_data=data.validation_dataset,
            validation_steps=None if options["eval_batches"] == "all" else options["eval_batches"],
            # `--eval-batches N` given: the run's final score is on those N batches too
            # (a dry run or a quick check); by default, the whole split.
            final_validation_steps=_final_eval_batches(args),
            run_config=config,
            keep_checkpoints=options["keep_checkpoints"],
            resume=args.resume,
            overwrite=args.overwrite,
            callbacks=[SaveTokenizer()],
            **_fit_steps(spec, data, options, log_every, eval_every),
        )
    except TrainingDivergedError as error:
        print(f"keras-dualobj train: {error}", file=sys.stderr)
        return 1
    if not tokenizer_dir.is_dir():
        record_written(output_dir, files=[tokenizer_dir])
        save_tokenizer(data.tokenizer, tokenizer_dir)
    _write_summary(output_dir, config, counts, data, result, options, started, model)
    return 0


def _write_summary(output_dir, config, counts, data, result, options, started, model):
    """Samples each way, writes `summary.json` and prints the summary."""
    from keras_dualobj.training.atomic_files import atomic_write_text
    from keras_dualobj.training.manifest import record_written

    samples = _summary_samples(model, data, options, config["seed"])
    summary = {
        "output_dir": str(output_dir),
        "preset": config["preset"],
        "parameters": counts,
        "corpus": f"{data.corpus_source} ({data.corpus_origin})",
        "plan": data.plan.describe(),
        "total_steps": data.plan.total_steps,
        "steps_done": result.total_steps // int(config.get("accumulation_steps", 1)),
        "resumed_from_step": result.start_step // int(config.get("accumulation_steps", 1)),
        "held_out": result.evaluation,
        "tokens_per_second": result.tokens_per_second,
        "wall_seconds": time.perf_counter() - started,
        "samples": samples,
        "model": str(result.model_path),
    }
    record_written(output_dir, files=["summary.json"])
    atomic_write_text(output_dir / "summary.json", json.dumps(summary, indent=1))
    print(_format_summary(summary))


def _format_summary(summary):
    lines = ["", "=== Summary ==="]
    lines.append(f"run         {summary['output_dir']} (preset {summary['preset']}, "
                 f"{summary['parameters']['total']:,} parameters)")
    lines.append(f"data        {summary['corpus']}")
    lines.append(f"plan        {summary['plan']}")
    if summary["steps_done"] < summary["total_steps"]:
        lines.append(f"dry run     stopped after {summary['steps_done']:,} of "
                     f"{summary['total_steps']:,} updates (--max-steps)")
    held_out = summary["held_out"] or {}
    if held_out:
        ar, md = held_out.get("ar_loss"), held_out.get("md_loss")
        lines.append(
            f"held-out    AR loss {ar:.3f} nats/token (perplexity {math.exp(ar):.2f}) | "
            f"MD loss (ELBO bound) {md:.3f} nats/token"
        )
    rate = summary["tokens_per_second"]
    lines.append(
        f"speed       {rate:,.0f} tokens/s training"
        if rate else "speed       (no timed steps in this call)"
    )
    lines.append(f"wall time   {summary['wall_seconds']:.0f} s")
    for name, sample in summary["samples"].items():
        lines.append(f"sample {name}:")
        lines.append(f"  prompt      {sample['prompt']!r}")
        lines.append(f"  completion  {sample['completion']!r}")
    lines.append(f"model       {summary['model']} (+ tokenizer/, logs/, checkpoints/)")
    return "\n".join(lines)


# --- Summary samples -------------------------------------------------------------


def _prompt_ids(data, prompt_length):
    """The first `prompt_length` tokens of a held-out document that long, prose first.

    A document opening on indentation (a doctest) or a heading's underline makes a poor
    prompt: both faces continue the run of spaces or `=`. The first full-length opening
    that reads as prose is taken, else the first full-length one.
    """
    import numpy as np

    rows = data.validation_rows if data.validation_rows is not None else data.train_rows
    tokens, documents = rows.token_ids, rows.document_ids
    best, full_length = tokens[0, :2], None
    for row in range(len(tokens)):
        for start in np.flatnonzero(tokens[row] == data.tokenizer.bos_token_id):
            same_document = documents[row, start:] == documents[row, start]
            length = same_document.size if same_document.all() else int(np.argmin(same_document))
            candidate = tokens[row, start : start + min(length, prompt_length)]
            if len(candidate) == prompt_length:
                if _reads_as_prose(str(data.tokenizer.detokenize(candidate[1:].tolist()))):
                    return candidate
                full_length = candidate if full_length is None else full_length
            if len(candidate) > len(best):
                best = candidate
    return best if full_length is None else full_length


def _reads_as_prose(text):
    """No leading or doubled spaces, and at least 80% letters and spaces.

    Example:
    >>> _reads_as_prose("The try statement"), _reads_as_prose("Dictionary view =======")
    (True, False)
    """
    letters = sum(character.isalpha() or character == " " for character in text)
    return text == text.lstrip() and "  " not in text and letters >= 0.8 * max(len(text), 1)


# `generate`'s default decoders (their defaults' one home: the classes), seeded: the
# samples show what a user's `generate` call gives, reproducibly.
def _summary_samples(model, data, options, seed):
    from keras_dualobj.decoders import ARDecoder
    from keras_dualobj.decoders import MDDecoder

    room = data.plan.sequence_length
    prompt_length = max(2, min(options["prompt_length"], room // 2))
    prompt = _prompt_ids(data, prompt_length)
    sample_length = max(1, min(options["sample_length"], room - len(prompt)))
    samples = {}
    for label, decoder in (("AR", ARDecoder(seed=seed)), ("MD", MDDecoder(seed=seed))):
        completion = model.generate(
            prompt, max_new_tokens=sample_length, strip_prompt=True, stop_token_ids=None,
            decoder=decoder,
        )
        # The call that reproduces it: generate(prompt, decoder=ARDecoder(seed=0)).
        samples[f"{label} ({type(decoder).__name__}(seed={seed}))"] = {
            "prompt": data.tokenizer.detokenize(prompt.tolist()),
            "completion": data.tokenizer.detokenize(completion.tolist()),
        }
    return samples
