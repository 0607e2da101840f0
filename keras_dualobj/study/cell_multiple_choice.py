"""A miniature "downstream" task per study cell: pick a passage's true continuation.

The paper compares its models on downstream multiple-choice tasks scored with each
face. A miniature from the study's own held-out split: each example is a passage of
`context_length` tokens from one held-out document, its true next
`continuation_length` tokens, and `num_choices - 1` continuations of the same length
taken from other examples' documents; the model must rank the true one first. Every
cell's saved model (`cells/<cell>/model.keras`) is scored on the same examples
(`keras_dualobj.evaluation.multiple_choice`) in the modes the paper's suite names
(`keras_dualobj.lm_eval.suite`): `ar`, `prefix`, `md` (the paper's MD-face score: the
pseudo-log-likelihood of a choice, one of its tokens masked at a time) and `md_elbo`
(the masked-diffusion bound, Monte-Carlo, the second MD column); the accuracies go to
`cells/<cell>/multiple_choice.json` and `multiple_choice.csv` (one column per mode, empty
where a mode was not scored). Chance is `1 / num_choices`.

Files written before the PLL (no `"format"` in `multiple_choice.json`) called the ELBO
score `md`: their `ar`, `prefix` and `md` accuracies are kept (the last as `md_elbo`)
and only the missing modes are scored.
"""

import csv
import json
from pathlib import Path

import numpy as np

from keras_dualobj.training.atomic_files import atomic_path
from keras_dualobj.training.atomic_files import atomic_write_text
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

MC_FILE = "multiple_choice.json"
MC_FORMAT = 2
MC_MODES = ("ar", "prefix", "md", "md_elbo")
# study mode -> `DualLM.score` mode
MODEL_MODES = {"ar": "ar", "prefix": "prefix", "md": "pll", "md_elbo": "md"}
# The modes of a file without "format" (older versions), in the names used now.
LEGACY_MODES = {"ar": "ar", "prefix": "prefix", "md": "md_elbo"}


def continuation_examples(token_ids, document_ids, num_examples=256, context_length=32,
                          continuation_length=16, num_choices=4, seed=0):
    """Multiple-choice examples (token-id lists) from held-out rows.

    Each example's context and true continuation are one window of
    `context_length + continuation_length` tokens within one document (the first
    such window of a row); its distractors are the continuations of other examples,
    from other documents. The correct choice's position is drawn at random.

    Args:
        token_ids, document_ids: `[rows, length]` held-out rows (`PackedRows`).
        num_examples: examples to build (fewer rows with such a window is an error).

    Returns:
        list of `{"context", "choices", "label"}` dicts.

    Example:
    >>> ids = np.arange(40).reshape(4, 10) + 5
    >>> docs = np.repeat(np.arange(4)[:, None], 10, axis=1)
    >>> examples = continuation_examples(ids, docs, num_examples=4, context_length=3,
    ...                                  continuation_length=2, num_choices=2)
    >>> examples[0]["context"], examples[0]["choices"][examples[0]["label"]]
    ([5, 6, 7], [8, 9])
    """
    for name, value in (("num_examples", num_examples), ("context_length", context_length),
                        ("continuation_length", continuation_length)):
        check_int(name, value, minimum=1)
    check_int("num_choices", num_choices, minimum=2)
    token_ids = np.asarray(token_ids)
    document_ids = np.asarray(document_ids)
    if token_ids.ndim != 2 or token_ids.shape != document_ids.shape:
        raise ValueError(
            f"token_ids and document_ids must be [rows, length] arrays of one shape; "
            f"received {token_ids.shape} and {document_ids.shape}."
        )
    window = context_length + continuation_length
    spans = []
    for row in range(len(token_ids)):
        starts = [
            start
            for start in range(token_ids.shape[1] - window + 1)
            if (document_ids[row, start : start + window] == document_ids[row, start]).all()
        ][:1]
        if starts:
            spans.append((row, starts[0]))
        if len(spans) == num_examples:
            break
    if len(spans) < max(num_examples, num_choices):
        raise ValueError(
            f"Only {len(spans)} held-out rows hold a window of {window} tokens within one "
            f"document; num_examples={num_examples} (and num_choices={num_choices}) need "
            "more. Use shorter windows or fewer examples."
        )
    rng = np.random.default_rng(seed)
    examples = []
    for index, (row, start) in enumerate(spans):
        middle = start + context_length
        others = rng.choice(
            [i for i in range(len(spans)) if spans[i][0] != row and
             document_ids[spans[i][0], spans[i][1]] != document_ids[row, start]],
            size=num_choices - 1, replace=False,
        )
        continuations = [token_ids[spans[i][0], spans[i][1] + context_length : spans[i][1] + window]
                         for i in others]
        label = int(rng.integers(num_choices))
        continuations.insert(label, token_ids[row, middle : start + window])
        examples.append({
            "context": token_ids[row, start:middle].tolist(),
            "choices": [c.tolist() for c in continuations],
            "label": label,
        })
    return examples


def evaluate_cell(model, examples, modes=MC_MODES, num_samples=4, seed=0):
    """`{mode: accuracy}` of a model on `examples` (token-normalised scores).

    `num_samples` and `seed`: the masks of the `md_elbo` estimate (the other modes are
    exact).
    """
    for mode in modes:
        check_choice("modes", mode, MC_MODES)
    result = model.evaluate_multiple_choice(
        examples, modes=[MODEL_MODES[m] for m in modes], length_normalization="tokens",
        num_samples=num_samples, seed=seed,
    )
    return {mode: result["modes"][MODEL_MODES[mode]]["accuracy"] for mode in modes}


def stored_accuracies(stored, examples, num_samples):
    """The accuracies a cell's `multiple_choice.json` holds for these `examples`
    (`{mode: accuracy}`, possibly empty), whichever version wrote it."""
    if stored is None:
        return {}
    if stored.get("format") == MC_FORMAT:
        if stored["examples"] != _examples_digest(examples):
            return {}
        accuracy = dict(stored["accuracy"])
        if stored.get("md_elbo_samples") != num_samples:
            accuracy.pop("md_elbo", None)
        return accuracy
    if stored.get("examples") != _legacy_digest(examples, tuple(LEGACY_MODES), num_samples):
        return {}
    return {LEGACY_MODES[mode]: value for mode, value in stored["accuracy"].items()
            if mode in LEGACY_MODES}


def evaluate_study_cells(study_dir, examples, modes=MC_MODES, num_samples=4, stream=None):
    """Scores every finished cell of a study on `examples`; resumable.

    A cell's accuracies stored for the same examples (`multiple_choice.json`, by this
    version or an older one: see the module docstring) are read back and only the
    missing modes are scored. Writes `multiple_choice.csv` (one row per cell: α, R,
    seed, one accuracy per mode of `MC_MODES`, empty where not scored) and returns
    those rows.
    """
    from keras_dualobj.models.saving import load_model
    from keras_dualobj.study.folder import CELLS_DIR
    from keras_dualobj.study.folder import study_cell_keys
    from keras_dualobj.study.results import read_results

    for mode in modes:
        check_choice("modes", mode, MC_MODES)
    study_dir = Path(study_dir)
    rows = []
    for result, key in study_cell_keys(study_dir, read_results(study_dir)):
        path = study_dir / CELLS_DIR / key / MC_FILE
        accuracy = stored_accuracies(json.loads(path.read_text()) if path.is_file() else None,
                                     examples, num_samples)
        missing = [mode for mode in modes if mode not in accuracy]
        if missing:
            import keras

            model = load_model(study_dir / CELLS_DIR / key / "model.keras")
            accuracy.update(evaluate_cell(model, examples, missing, num_samples))
            keras.backend.clear_session()
            atomic_write_text(path, json.dumps({
                "format": MC_FORMAT, "examples": _examples_digest(examples),
                "md_elbo_samples": num_samples, "accuracy": accuracy,
            }))
            if stream is not None:
                kept = sorted(set(accuracy) - set(missing))
                stream.write(f"[multiple choice] {key}: scored {', '.join(missing)}"
                             + (f" (kept {', '.join(kept)})" if kept else "") + ": "
                             + ", ".join(f"{m} {accuracy[m]:.3f}" for m in MC_MODES if m in accuracy)
                             + "\n")
                stream.flush()
        rows.append({"ar_fraction": result.ar_fraction, "repetitions": result.repetitions,
                     "seed": result.seed,
                     **{f"{m}_accuracy": accuracy.get(m, "") for m in MC_MODES}})
    with atomic_path(study_dir / "multiple_choice.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["ar_fraction"])
            writer.writeheader()
            writer.writerows(rows)
    return rows


def _examples_digest(examples):
    """A short identity of the task's examples."""
    import hashlib

    return hashlib.sha256(json.dumps(examples, sort_keys=True).encode()).hexdigest()[:16]


def _legacy_digest(examples, modes, num_samples):
    """The identity older versions stored (examples, modes, MD samples)."""
    import hashlib

    text = json.dumps([examples, list(modes), num_samples], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_examples(study_dir, num_examples=512, num_choices=4, seed=0):
    """`continuation_examples` from the held-out rows of a study folder's corpus split
    (prepared again from its `study.json`, the same rows its cells were evaluated on)."""
    from keras_dualobj.study.folder import load_study_config

    config = load_study_config(study_dir)
    data = config.recipe.prepare_data(
        data_dir=config.data_dir, repetitions=min(config.repetitions), verbose=False
    )
    rows = data.validation_rows
    return continuation_examples(rows.token_ids, rows.document_ids, num_examples=num_examples,
                                 num_choices=num_choices, seed=seed)
