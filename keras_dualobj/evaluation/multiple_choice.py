"""Zero-shot multiple choice: pick the completion the model finds most likely.

File format: JSON Lines, one example per line, as HellaSwag / ARC / PIQA are usually
exported:

    {"context": "The cat sat on the", "choices": [" mat", " moon"], "label": 0}

`context` and every choice are strings (the model needs a tokenizer) or lists of
token ids; `label` is the index of the correct choice. A string context gets `<s>`
prepended; a choice is tokenized on its own and appended to the context, so the
boundary between the two is exact (write the separating space into the choices, as
those datasets do). Blank lines are skipped.

Each choice is scored by the log-likelihood of its tokens given the context, in one
or more modes of the same model: `"ar"` (causal, exact), `"prefix"` (bidirectional
over the context, causal over the choice, exact) and `"md"` (minus the
masked-diffusion bound with only the choice's tokens masked, a Monte-Carlo estimate).
With `length_normalization="tokens"` (or `"bytes"`, the UTF-8 length of a string
choice, as lm-evaluation-harness's `acc_norm`) the score is divided by the choice's
length, so that long choices are not penalised for having more tokens.
"""

import json
import numbers
from pathlib import Path

import numpy as np

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

SCORING_MODES = ("ar", "prefix", "md", "pll")
LENGTH_NORMALIZATIONS = (None, "tokens", "bytes")


def _is_ids(value):
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    )


def check_example(example, where="example"):
    """Raises a `ValueError` naming `where` if `example` is not a valid example.

    Example:
    >>> check_example({"context": [1, 20], "choices": [[21], [22]], "label": 1})
    """
    if not isinstance(example, dict):
        raise ValueError(f"{where}: must be a JSON object; received {example!r}.")
    missing = {"context", "choices", "label"} - set(example)
    if missing:
        raise ValueError(
            f"{where}: missing key(s) {sorted(missing)}; an example needs `context`, "
            f"`choices` and `label`; received keys {sorted(example)}."
        )
    context, choices, label = example["context"], example["choices"], example["label"]
    if not ((isinstance(context, str) and context) or _is_ids(context)):
        raise ValueError(
            f"{where}: `context` must be a non-empty string or list of token ids; "
            f"received {context!r}."
        )
    if not isinstance(choices, (list, tuple)) or len(choices) < 2:
        raise ValueError(
            f"{where}: `choices` must be a list of at least 2 completions; received "
            f"{choices!r}."
        )
    for i, choice in enumerate(choices):
        if not ((isinstance(choice, str) and choice) or _is_ids(choice)):
            raise ValueError(
                f"{where}: choice {i} must be a non-empty string or list of token ids; "
                f"received {choice!r}."
            )
    if (
        isinstance(label, bool)
        or not isinstance(label, numbers.Integral)
        or not 0 <= label < len(choices)
    ):
        raise ValueError(
            f"{where}: `label` must be an integer index into the {len(choices)} choices "
            f"(0..{len(choices) - 1}); received label={label!r}."
        )


def load_multiple_choice(path):
    """Reads and validates a JSON Lines file of examples (see the module docstring).

    Example:
    >>> import json, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"context": [1], "choices": [[5], [6]], "label": 0}))
    >>> load_multiple_choice(path)
    [{'context': [1], 'choices': [[5], [6]], 'label': 0}]
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Multiple-choice file {str(path)!r} does not exist.")
    examples = []
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                example = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg}).") from None
            check_example(example, where)
            examples.append(example)
    if not examples:
        raise ValueError(f"Multiple-choice file {str(path)!r} holds no examples.")
    return examples


def _encode(text_or_ids, tokenize, bos_token_id, where):
    if not isinstance(text_or_ids, str):
        return np.asarray(text_or_ids, dtype="int32")
    if tokenize is None:
        raise ValueError(
            f"{where} is a string but there is no tokenizer; give token ids or a model "
            "with a tokenizer."
        )
    ids = np.asarray(tokenize(text_or_ids)).astype("int32").reshape(-1)
    if bos_token_id is not None:
        ids = np.concatenate([np.array([bos_token_id], "int32"), ids])
    return ids


def example_batch(example, tokenize=None, bos_token_id=1, pad_token_id=3):
    """One row per choice: `context + choice`, right-padded.

    Returns a dict of NumPy arrays: `token_ids` and `document_ids` `[N, L]` (padding is
    its own document, invisible to the rest under any attention), `target_mask`
    `[N, L]` (the choice's tokens) and `prefix_lengths` `[N]` (the context length).

    Example:
    >>> batch = example_batch({"context": [1, 20], "choices": [[21], [22, 23]], "label": 0})
    >>> batch["token_ids"].tolist(), batch["target_mask"].astype(int).tolist()
    ([[1, 20, 21, 3], [1, 20, 22, 23]], [[0, 0, 1, 0], [0, 0, 1, 1]])
    """
    context = _encode(example["context"], tokenize, bos_token_id, "`context`")
    choices = [
        _encode(choice, tokenize, None, f"choice {i}")
        for i, choice in enumerate(example["choices"])
    ]
    length = len(context) + max(len(choice) for choice in choices)
    batch_size = len(choices)
    token_ids = np.full((batch_size, length), pad_token_id, dtype="int32")
    document_ids = np.ones((batch_size, length), dtype="int32")
    target_mask = np.zeros((batch_size, length), dtype=bool)
    for row, choice in enumerate(choices):
        end = len(context) + len(choice)
        token_ids[row, : len(context)] = context
        token_ids[row, len(context) : end] = choice
        document_ids[row, :end] = 0
        target_mask[row, len(context) : end] = True
    return {
        "token_ids": token_ids,
        "document_ids": document_ids,
        "target_mask": target_mask,
        "prefix_lengths": np.full((batch_size,), len(context), dtype="int32"),
    }


def evaluate_multiple_choice(
    score_fn,
    examples,
    modes=("ar",),
    length_normalization=None,
    tokenize=None,
    bos_token_id=1,
    pad_token_id=3,
    batch_size=32,
):
    """Accuracy of picking the highest-scoring choice, per scoring mode.

    The choices of all examples are scored together, `batch_size` rows per call of
    `score_fn`, all padded to one shape (padding is its own document and never
    scored), so a compiled model traces once per mode rather than once per example.

    Args:
        score_fn: `(token_ids, mode, target_mask=, prefix_lengths=, document_ids=,
            batch_index=) -> dict with "nll", "standard_error", "num_tokens"` per row,
            e.g. a `DualLM.score` with its MD options bound
            (`DualLM.evaluate_multiple_choice` does this; its MD masks do not depend
            on the batch, so `batch_index` is informative only).
        examples: a path to a JSON Lines file, or a list of example dicts.
        modes: sequence of `"ar"`, `"prefix"`, `"md"`, `"pll"`.
        length_normalization: `None`, `"tokens"` or `"bytes"` (string choices only).
        tokenize: `str -> ids`, needed for string examples.
        bos_token_id: prepended to string contexts.
        pad_token_id: fills rows up to the longest one.
        batch_size: rows per call of `score_fn`.

    Returns:
        dict: `num_examples`, `labels`, `length_normalization` and `modes`, mapping
        each mode to `accuracy`, `predictions`, `scores` (per example, per choice:
        `-nll`, divided by the length if normalised) and `standard_errors` (of the
        scores; zeros for the exact modes).

    Example:
    >>> import numpy as np
    >>> def prefers_21(token_ids, mode, target_mask, prefix_lengths, document_ids,
    ...                batch_index):
    ...     nll = np.where(token_ids == 21, 0.1, 5.0)
    ...     return {"nll": (nll * target_mask).sum(1),
    ...             "standard_error": np.zeros(len(token_ids)),
    ...             "num_tokens": target_mask.sum(1)}
    >>> examples = [{"context": [1, 20], "choices": [[22], [21]], "label": 1}]
    >>> evaluate_multiple_choice(prefers_21, examples)["modes"]["ar"]["accuracy"]
    1.0
    """
    if isinstance(modes, str):
        modes = (modes,)
    if not modes:
        raise ValueError(f"`modes` must name at least one of {list(SCORING_MODES)}.")
    for mode in modes:
        check_choice("modes", mode, SCORING_MODES)
    check_choice("length_normalization", length_normalization, LENGTH_NORMALIZATIONS)
    check_int("batch_size", batch_size, minimum=1)
    if isinstance(examples, (str, Path)):
        examples = load_multiple_choice(examples)
    else:
        for i, example in enumerate(examples):
            check_example(example, f"examples[{i}]")
    if not examples:
        raise ValueError("`examples` is empty.")

    batches = [example_batch(example, tokenize, bos_token_id, pad_token_id) for example in examples]
    lengths = np.concatenate(
        [
            _choice_lengths(example, batch, length_normalization, i)
            for i, (example, batch) in enumerate(zip(examples, batches))
        ]
    )
    rows = _stack_rows(batches, batch_size, pad_token_id)
    num_rows = len(lengths)
    boundaries = np.cumsum([0] + [len(example["choices"]) for example in examples])

    results = {}
    for mode in modes:
        nll, errors = [], []
        for index, start in enumerate(range(0, len(rows["token_ids"]), batch_size)):
            chunk = {name: values[start : start + batch_size] for name, values in rows.items()}
            scored = score_fn(
                chunk["token_ids"],
                mode,
                target_mask=chunk["target_mask"],
                prefix_lengths=chunk["prefix_lengths"] if mode == "prefix" else None,
                document_ids=chunk["document_ids"],
                batch_index=index,
            )
            nll.append(np.asarray(scored["nll"], "float64"))
            errors.append(np.asarray(scored["standard_error"], "float64"))
        scores = -np.concatenate(nll)[:num_rows] / lengths
        errors = np.concatenate(errors)[:num_rows] / lengths
        per_example = [slice(a, b) for a, b in zip(boundaries[:-1], boundaries[1:])]
        results[mode] = {
            "predictions": [int(np.argmax(scores[rows_of])) for rows_of in per_example],
            "scores": [scores[rows_of].tolist() for rows_of in per_example],
            "standard_errors": [errors[rows_of].tolist() for rows_of in per_example],
        }
    labels = [int(example["label"]) for example in examples]
    for result in results.values():
        result["accuracy"] = float(np.mean(np.equal(result["predictions"], labels)))
    return {
        "num_examples": len(examples),
        "labels": labels,
        "length_normalization": length_normalization,
        "modes": results,
    }


def _stack_rows(batches, batch_size, pad_token_id):
    """All examples' rows in one array of one length, padded to whole batches.

    Filler rows are all padding in their own document, with nothing to score.
    """
    num_rows = sum(len(batch["token_ids"]) for batch in batches)
    total = -(-num_rows // batch_size) * batch_size
    length = max(batch["token_ids"].shape[1] for batch in batches)
    rows = {
        "token_ids": np.full((total, length), pad_token_id, "int32"),
        "document_ids": np.ones((total, length), "int32"),
        "target_mask": np.zeros((total, length), bool),
        "prefix_lengths": np.zeros((total,), "int32"),
    }
    start = 0
    for batch in batches:
        count, width = batch["token_ids"].shape
        for name in ("token_ids", "document_ids", "target_mask"):
            rows[name][start : start + count, :width] = batch[name]
        rows["prefix_lengths"][start : start + count] = batch["prefix_lengths"]
        start += count
    return rows


def _choice_lengths(example, batch, length_normalization, index):
    if length_normalization is None:
        return np.ones(len(example["choices"]))
    if length_normalization == "tokens":
        return batch["target_mask"].sum(axis=1).astype("float64")
    if not all(isinstance(choice, str) for choice in example["choices"]):
        raise ValueError(
            f'length_normalization="bytes" needs string choices; example {index} has '
            f"token-id choices {example['choices']!r}. Use \"tokens\" instead."
        )
    return np.array([len(choice.encode("utf-8")) for choice in example["choices"]], "float64")
