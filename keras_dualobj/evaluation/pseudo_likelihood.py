"""The exact pseudo-log-likelihood: the deterministic masked-diffusion score.

    PLL(x) = Σ_{j scored} log q(x_j | x with only position j masked)

is what the masked-diffusion face gives with one token hidden at a time (BERT-style
scoring, Salazar et al. 2020). It is exact (no Monte-Carlo noise, so no seed and no
standard error), costs one forward pass per scored token — all of a batch's copies
are scored together, `batch_size` copies per pass — and suits short continuations
such as multiple-choice answers. It is *not* a bound on `-log p(x)`: it is usually
lower than the masked-diffusion bound (each token sees all the others), and a score
to rank choices with, not a likelihood to report as perplexity.

`mask_following=True` is the multi-token variant: scoring target j also masks every
later target of its row, so each target sees the context and the targets to its left
only (the "l2r" masking of Kauf & Ivanova 2023, over a whole continuation):

    Σ_j log q(x_j | x with j and every later target masked)

which is the chain rule along left-to-right unmasking, an exact log-likelihood of the
masked-diffusion face for that one order (not a pseudo-likelihood).
"""

import numpy as np
from keras import ops

from keras_dualobj.evaluation.likelihood import call_logits
from keras_dualobj.evaluation.likelihood import check_scoring_inputs
from keras_dualobj.evaluation.likelihood import greedy_matches
from keras_dualobj.evaluation.md_bound import aligned_cross_entropy
from keras_dualobj.utils.validation import check_int


def masked_copies(token_ids, target_mask, mask_token_id, mask_following=False):
    """The one-copy-per-target inputs of the pseudo-log-likelihood.

    Args:
        token_ids: int `[B, L]` NumPy array.
        target_mask: bool `[B, L]`, the scored positions.
        mask_token_id: id of `<mask>`.
        mask_following: also mask every later target of the row in each copy.

    Returns:
        `(rows, columns, inputs)`: for the k-th target, its row, its position and
        `inputs[k]`, the row with that target (and, with `mask_following`, every later
        target of the row) replaced by `mask_token_id`. Targets come in row-major order.

    Example:
    >>> import numpy as np
    >>> rows, columns, inputs = masked_copies(
    ...     np.array([[1, 5, 6, 7]]), np.array([[0, 0, 1, 1]]), 4, mask_following=True)
    >>> columns.tolist(), inputs.tolist()
    ([2, 3], [[1, 5, 4, 4], [1, 5, 6, 4]])
    """
    target_mask = np.asarray(target_mask, bool)
    rows, columns = np.nonzero(target_mask)
    inputs = np.asarray(token_ids)[rows].copy()
    if mask_following:
        later = target_mask[rows] & (np.arange(token_ids.shape[1]) >= columns[:, None])
        inputs[later] = mask_token_id
    else:
        inputs[np.arange(len(rows)), columns] = mask_token_id
    return rows, columns, inputs


def pseudo_log_likelihood(
    logits_fn,
    token_ids,
    target_mask,
    mask_token_id,
    shifted=True,
    document_ids=None,
    batch_size=64,
    checked=False,
    mask_following=False,
):
    """Minus the pseudo-log-likelihood of the target tokens of each row (nats).

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`; called with bidirectional attention.
        token_ids: int `[B, L]`.
        target_mask: bool `[B, L]`, the positions scored (one masked at a time).
        mask_token_id: id of `<mask>`.
        shifted: whether the logits at `j - 1` predict the token at `j`.
        document_ids: optional int `[B, L]`.
        batch_size: int >= 1, one-token-masked copies per forward pass (the last
            pass is padded with copies, so every pass has one shape).
        checked: the arrays already passed `check_scoring_inputs`.
        mask_following: the multi-token variant (module docstring): each copy also
            masks every later target of its row.

    Returns:
        dict of NumPy `[B]` arrays: `nll` (`-PLL`), `num_tokens`, `standard_error`
        (zeros: exact) and `greedy` (every target is the argmax when masked alone).

    Example:
    >>> import numpy as np
    >>> uniform = lambda ids, docs, prefix: np.zeros(ids.shape + (8,), "float32")
    >>> result = pseudo_log_likelihood(uniform, np.array([[1, 5, 6]]),
    ...                                np.array([[0, 1, 1]]), mask_token_id=4)
    >>> round(float(result["nll"][0]), 4), result["num_tokens"].tolist()  # 2 log 8
    (4.1589, [2])
    """
    if not checked:
        token_ids, target_mask, document_ids = check_scoring_inputs(
            token_ids, target_mask, document_ids
        )
    check_int("batch_size", batch_size, minimum=1)
    rows, columns, copies = masked_copies(
        token_ids, target_mask, mask_token_id, mask_following=bool(mask_following)
    )
    num_rows, length = token_ids.shape
    nll = np.zeros((num_rows,), "float64")
    misses = np.zeros((num_rows,), "int64")
    for start in range(0, len(rows), batch_size):
        chunk = np.arange(start, min(start + batch_size, len(rows)))
        count = len(chunk)
        chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - count)])
        chunk_rows, chunk_columns, inputs = rows[chunk], columns[chunk], copies[chunk]
        logits = call_logits(
            logits_fn,
            inputs,
            document_ids[chunk_rows],
            np.full((batch_size,), length, "int32"),
        )
        cross_entropy = ops.convert_to_numpy(
            aligned_cross_entropy(logits, token_ids[chunk_rows], shifted)
        ).astype("float64")
        picked = cross_entropy[np.arange(count), chunk_columns[:count]]
        nll += np.bincount(chunk_rows[:count], weights=picked, minlength=num_rows)
        hits = greedy_matches(logits, token_ids[chunk_rows], shifted)
        missed = ~hits[np.arange(count), chunk_columns[:count]]
        misses += np.bincount(chunk_rows[:count], weights=missed, minlength=num_rows).astype(int)
    return {
        "nll": nll,
        "num_tokens": target_mask.sum(axis=1),
        "standard_error": np.zeros((num_rows,), "float64"),
        "greedy": misses == 0,
    }
