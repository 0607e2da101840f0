"""Held-out language-modelling numbers of one model in several modes.

A token stream is cut into non-overlapping rows (`token_rows`); every row is scored
on its own in each mode and the totals give per-token NLL and perplexity: exact for
`"ar"`, an upper bound (with a standard error) for `"md"`. Both modes score the same
positions (the model's default target mask: every non-special token after the first
of its row), so their numbers are comparable.
"""

import math

import numpy as np

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

# "md_exact": the exact likelihood along an MD decoder's order (DUEL, one pass per step).
LANGUAGE_MODELING_MODES = ("ar", "md", "md_exact")


def token_rows(token_ids, sequence_length, pad_token_id):
    """Cuts a 1-D id stream into rows of `sequence_length`, padding the last one.

    Nothing is dropped: the last row is right-padded, and padding gets document id 1
    so that no attention mode lets a real token see it.

    Returns:
        `(token_ids, document_ids)`, int32 `[num_rows, sequence_length]`.

    Example:
    >>> ids, docs = token_rows([1, 20, 21, 22, 23], sequence_length=3, pad_token_id=3)
    >>> ids.tolist(), docs.tolist()
    ([[1, 20, 21], [22, 23, 3]], [[0, 0, 0], [0, 0, 1]])
    """
    check_int("sequence_length", sequence_length, minimum=2)
    token_ids = np.asarray(token_ids, dtype="int32").reshape(-1)
    if token_ids.size == 0:
        raise ValueError("`token_ids` is empty: there is nothing to evaluate.")
    num_rows = -(-token_ids.size // sequence_length)
    padded = np.full((num_rows * sequence_length,), pad_token_id, dtype="int32")
    padded[: token_ids.size] = token_ids
    document_ids = np.zeros_like(padded)
    document_ids[token_ids.size :] = 1
    shape = (num_rows, sequence_length)
    return padded.reshape(shape), document_ids.reshape(shape)


def evaluate_language_modeling(
    score_fn,
    token_ids,
    document_ids=None,
    modes=("ar", "md"),
    batch_size=8,
    pad_token_id=3,
):
    """Per-token NLL and perplexity of `token_ids` rows in each mode.

    Args:
        score_fn: `(token_ids, mode, document_ids=, batch_index=) -> dict with "nll",
            "standard_error", "num_tokens"` per row, e.g. a `DualLM.score` with its
            MD options bound; seeding MD masks with the batch index makes them differ
            between batches and the run reproducible.
        token_ids: int `[num_rows, length]`.
        document_ids: optional int `[num_rows, length]`.
        modes: any of `"ar"`, `"md"`, `"md_exact"` (scored by `score_fn`); default `ar`, `md`.
        batch_size: rows per forward pass; the last batch is filled up with rows of
            `pad_token_id`, which the default target mask never scores.
        pad_token_id: id of the filler rows.

    Returns:
        dict per mode: `nll_per_token` (nats), `perplexity` (`exp` of it; a bound for
        `"md"`), `standard_error` (of `nll_per_token`; 0 for `"ar"`), `num_tokens`.

    Example:
    >>> import numpy as np
    >>> def uniform_over_8(token_ids, mode, document_ids=None, batch_index=None):
    ...     n = (token_ids[:, 1:] != 3).sum(axis=1)  # filler rows score nothing
    ...     return {"nll": n * np.log(8), "standard_error": 0 * n, "num_tokens": n}
    >>> result = evaluate_language_modeling(uniform_over_8, np.ones((3, 5), "int32"))
    >>> round(result["ar"]["perplexity"], 6), result["ar"]["num_tokens"]
    (8.0, 12)
    """
    if isinstance(modes, str):
        modes = (modes,)
    for mode in modes:
        check_choice("modes", mode, LANGUAGE_MODELING_MODES)
    check_int("batch_size", batch_size, minimum=1)
    token_ids = np.asarray(token_ids, dtype="int32")
    if token_ids.ndim != 2 or token_ids.shape[0] == 0:
        raise ValueError(
            f"`token_ids` must have shape [num_rows >= 1, length]; received {token_ids.shape}."
        )
    if document_ids is None:
        document_ids = np.zeros_like(token_ids)
    # Whole batches only, so that a compiled model sees one shape: filler rows are
    # padding in their own document with nothing to score (default target mask).
    pad_token_id = int(pad_token_id)
    filler = -len(token_ids) % batch_size
    token_ids = np.concatenate(
        [token_ids, np.full((filler, token_ids.shape[1]), pad_token_id, "int32")]
    )
    document_ids = np.concatenate(
        [np.asarray(document_ids, "int32"), np.ones((filler, token_ids.shape[1]), "int32")]
    )
    results = {}
    for mode in modes:
        total_nll, total_variance, total_tokens = 0.0, 0.0, 0
        for batch_index, start in enumerate(range(0, len(token_ids), batch_size)):
            rows = slice(start, start + batch_size)
            scored = score_fn(
                token_ids[rows], mode, document_ids=document_ids[rows], batch_index=batch_index
            )
            total_nll += float(np.sum(scored["nll"]))
            # Rows are scored with independent masks, so their variances add.
            total_variance += float(np.sum(np.square(scored["standard_error"])))
            total_tokens += int(np.sum(scored["num_tokens"]))
        if total_tokens == 0:
            raise ValueError("No position of `token_ids` is scored: rows hold no text.")
        nll_per_token = total_nll / total_tokens
        results[mode] = {
            "nll_per_token": nll_per_token,
            "perplexity": math.exp(nll_per_token),
            "standard_error": math.sqrt(total_variance) / total_tokens,
            "num_tokens": total_tokens,
        }
    return results
