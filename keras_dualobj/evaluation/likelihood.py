"""Exact log-likelihood of chosen tokens under causal (AR) or prefix-LM attention.

A dual model gives exact next-token probabilities with any attention that never lets
a position see the token it predicts: causal attention (plain AR), or prefix-LM
attention, bidirectional over a prompt and causal after it (arXiv 2512.14549,
"Remark 3": no extra training, and it scores better than plain AR). In both, the logit
at position `j - 1` predicts the token at `j`, so a target `j` must not lie inside the
bidirectional prefix.
"""

import numpy as np
from keras import ops

from keras_dualobj.objectives.losses import token_cross_entropy


def check_scoring_inputs(token_ids, target_mask, document_ids=None):
    """Validates and converts scoring inputs to NumPy (int32, bool, int32).

    Example:
    >>> ids, mask, docs = check_scoring_inputs([[1, 5, 6]], [[0, 1, 1]])
    >>> ids.shape, mask.dtype.name, docs.tolist()
    ((1, 3), 'bool', [[0, 0, 0]])
    """
    token_ids = np.asarray(ops.convert_to_numpy(token_ids))
    if token_ids.ndim != 2 or token_ids.shape[1] < 2:
        raise ValueError(
            "`token_ids` must have shape [batch, length] with length >= 2; received "
            f"shape {token_ids.shape}."
        )
    if not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"`token_ids` must be integers; received dtype {token_ids.dtype}.")
    target_mask = np.asarray(ops.convert_to_numpy(target_mask)).astype(bool)
    if target_mask.shape != token_ids.shape:
        raise ValueError(
            f"`target_mask` must have the shape of `token_ids` {token_ids.shape}; "
            f"received shape {target_mask.shape}."
        )
    if target_mask[:, 0].any():
        raise ValueError(
            "`target_mask` marks position 0, which has no preceding position to "
            "predict it from; scored positions must be >= 1."
        )
    if document_ids is None:
        document_ids = np.zeros_like(token_ids)
    document_ids = np.asarray(ops.convert_to_numpy(document_ids))
    if document_ids.shape != token_ids.shape:
        raise ValueError(
            f"`document_ids` must have the shape of `token_ids` {token_ids.shape}; "
            f"received shape {document_ids.shape}."
        )
    return token_ids.astype("int32"), target_mask, document_ids.astype("int32")


def call_logits(logits_fn, token_ids, document_ids, prefix_lengths):
    """`logits_fn` on backend tensors (a Keras functional call rejects mixed inputs).

    Example:
    >>> import numpy as np
    >>> shapes = lambda ids, docs, prefix: (tuple(ids.shape), tuple(prefix.shape))
    >>> call_logits(shapes, np.ones((2, 3)), np.zeros((2, 3)), np.zeros(2))
    ((2, 3), (2,))
    """
    return logits_fn(
        ops.convert_to_tensor(token_ids, "int32"),
        ops.convert_to_tensor(document_ids, "int32"),
        ops.convert_to_tensor(prefix_lengths, "int32"),
    )


def target_cross_entropy(logits, token_ids):
    """`-log p(token j)` from the logits at `j - 1`, `[B, L]` NumPy float64 (column 0 is 0).

    Example:
    >>> import numpy as np
    >>> ce = target_cross_entropy(np.zeros((1, 3, 4), "float32"), np.array([[1, 2, 3]]))
    >>> np.round(ce, 4).tolist()  # log(4) for positions 1 and 2
    [[0.0, 1.3863, 1.3863]]
    """
    cross_entropy = token_cross_entropy(logits[:, :-1], token_ids[:, 1:])
    cross_entropy = ops.convert_to_numpy(cross_entropy).astype("float64")
    return np.pad(cross_entropy, ((0, 0), (1, 0)))


def greedy_matches(logits, token_ids, shifted=True):
    """`[B, L]` bool: the token at `j` is the argmax of its prediction (the logits at
    `j - 1` when `shifted`, else at `j`); column 0 is `False` when shifted.

    Example:
    >>> import numpy as np
    >>> logits = np.eye(4, dtype="float32")[None, [2, 3, 0]]  # argmax 2, 3, 0
    >>> greedy_matches(logits, np.array([[1, 2, 0]])).tolist()
    [[False, True, False]]
    """
    predicted = np.argmax(np.asarray(ops.convert_to_numpy(logits)), axis=-1)
    token_ids = np.asarray(ops.convert_to_numpy(token_ids))
    if not shifted:
        return predicted == token_ids
    return np.pad(predicted[:, :-1] == token_ids[:, 1:], ((0, 0), (1, 0)))


def sequence_nll(
    logits_fn, token_ids, target_mask, prefix_lengths=None, document_ids=None, checked=False
):
    """Exact negative log-likelihood (nats) of the target tokens of each row.

    `-sum over targets j of log p(x_j | x_<j)` under causal attention, or under
    prefix-LM attention when `prefix_lengths` is given (bidirectional over the first
    `prefix_lengths[b]` tokens of row b). Perplexity is
    `exp(sum(nll) / sum(num_tokens))`.

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`.
        token_ids: int `[B, L]`.
        target_mask: bool `[B, L]`, the positions scored (never position 0, never
            inside the prefix).
        prefix_lengths: optional int `[B]`; `None` = causal.
        document_ids: optional int `[B, L]`.
        checked: the three arrays already passed `check_scoring_inputs` (a caller
            that validated them at its own boundary, e.g. `DualLM.score`).

    Returns:
        dict of NumPy `[B]` arrays: `nll`, `num_tokens`, `standard_error` (zeros:
        exact) and `greedy` (every target is its prediction's argmax).

    Example:
    >>> import numpy as np
    >>> uniform = lambda ids, docs, prefix: np.zeros(ids.shape + (8,), "float32")
    >>> result = sequence_nll(uniform, np.array([[1, 5, 6]]), np.array([[0, 1, 1]]))
    >>> round(float(result["nll"][0]), 4)  # 2 * log(8)
    4.1589
    """
    if not checked:
        token_ids, target_mask, document_ids = check_scoring_inputs(
            token_ids, target_mask, document_ids
        )
    batch_size, length = token_ids.shape
    if prefix_lengths is None:
        prefix_lengths = np.zeros((batch_size,), "int32")
    else:
        prefix_lengths = np.asarray(ops.convert_to_numpy(prefix_lengths)).astype("int32")
        if prefix_lengths.shape != (batch_size,) or (prefix_lengths < 0).any():
            raise ValueError(
                f"`prefix_lengths` must be {batch_size} non-negative ints, one per row; "
                f"received {prefix_lengths.tolist()}."
            )
        inside = target_mask & (np.arange(length)[None, :] < prefix_lengths[:, None])
        if inside.any():
            row = int(np.flatnonzero(inside.any(axis=1))[0])
            raise ValueError(
                "A scored position lies inside the bidirectional prefix, where the model "
                f"sees the token it predicts: row {row} has prefix length "
                f"{int(prefix_lengths[row])} and targets at positions "
                f"{np.flatnonzero(target_mask[row]).tolist()}."
            )
    logits = call_logits(logits_fn, token_ids, document_ids, prefix_lengths)
    cross_entropy = target_cross_entropy(logits, token_ids)
    return {
        "nll": np.sum(cross_entropy * target_mask, axis=1),
        "num_tokens": target_mask.sum(axis=1),
        "standard_error": np.zeros((batch_size,), "float64"),
        "greedy": np.all(greedy_matches(logits, token_ids) | ~target_mask, axis=1),
    }
