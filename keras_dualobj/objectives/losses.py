"""The autoregressive (AR) and masked-diffusion (MD) losses as pure functions.

Formulas (DESIGN.md §1, arXiv 2512.14549):

- AR: `L_AR = mean over next-token targets j of CE(logits[j - 1], x[j])`.
- MD: per row, `sum over masked j of CE(logits[p(j)], x[j]) / t_hat`, summed over rows
  and divided by the number of maskable positions of those rows; `p(j) = j - 1` in the
  shifted (masked next-token prediction) convention and `p(j) = j` in the unshifted
  (MDLM) one. Since each maskable position is masked with probability `t_hat` on
  average, the expectation over masks is the mean cross-entropy of all maskable
  positions: an upper bound (ELBO) on the negative log-likelihood per token.
- z-loss: `mean of logsumexp(logits)^2` over predicted positions (PaLM's auxiliary loss).

Cross-entropies are computed in float32 whatever the logits' dtype.
"""

from keras import ops

from keras_dualobj.objectives.masking import next_token_targets


def _log_normalizer(logits):
    return ops.logsumexp(ops.cast(logits, "float32"), axis=-1)


def token_cross_entropy(logits, targets):
    """Cross-entropy `-log softmax(logits)[target]` at every position.

    Args:
        logits: float tensor `[..., vocabulary_size]`.
        targets: int tensor `[...]`.

    Returns:
        float32 tensor `[...]`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> ce = token_cross_entropy(np.zeros((1, 4), "float32"), np.array([2]))
    >>> round(float(ops.convert_to_numpy(ce)[0]), 4)  # log(4)
    1.3863
    """
    logits = ops.cast(logits, "float32")
    target_logits = ops.take_along_axis(
        logits, ops.expand_dims(ops.cast(targets, "int32"), -1), axis=-1
    )
    return _log_normalizer(logits) - ops.squeeze(target_logits, -1)


def position_terms(logits, token_ids, alignments=("shifted",)):
    """Everything the losses and metrics read from the logits, in one pass over them.

    The `[batch, length, vocabulary_size]` logits are read once for their log-normaliser
    (logsumexp) and their argmax per position; each alignment then only gathers one
    logit per position. Values sit on the logits' own positions: with `"shifted"`
    alignment, position i holds the cross-entropy of token i + 1 (the next token; the
    last position predicts nothing), with `"unshifted"` that of token i (MDLM). Weights
    on target positions move onto these with `predicting_positions`.

    Args:
        logits: float tensor `[batch, length, vocabulary_size]`.
        token_ids: int tensor `[batch, length]`, the targets.
        alignments: any of `"shifted"`, `"unshifted"`.

    Returns:
        `{"log_normalizer": float32 [batch, length]}` and, per alignment,
        `{alignment: {"cross_entropy": float32, "correct": bool}}` (`correct`: the
        argmax is the target).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> terms = position_terms(np.eye(3, dtype="float32")[None] * 9, np.array([[0, 1, 2]]),
    ...                        ("shifted", "unshifted"))
    >>> ops.convert_to_numpy(terms["unshifted"]["correct"]).tolist()
    [[True, True, True]]
    >>> ops.convert_to_numpy(terms["shifted"]["correct"])[0, :2].tolist()
    [False, False]
    """
    logits = ops.cast(logits, "float32")
    log_normalizer = ops.logsumexp(logits, axis=-1)
    predictions = ops.cast(ops.argmax(logits, axis=-1), "int32")
    token_ids = ops.cast(token_ids, "int32")
    terms = {"log_normalizer": log_normalizer}
    for alignment in alignments:
        targets = token_ids
        if alignment == "shifted":  # the last position's target is never weighted
            targets = ops.concatenate([token_ids[:, 1:], token_ids[:, -1:]], axis=1)
        target_logits = ops.take_along_axis(logits, targets[:, :, None], axis=-1)[:, :, 0]
        terms[alignment] = {
            "cross_entropy": log_normalizer - target_logits,
            "correct": ops.equal(predictions, targets),
        }
    return terms


def predicting_positions(weights, shifted=True):
    """Weights on target positions `[batch, length]`, moved onto the positions whose
    logits predict those targets (one to the left when `shifted`; position 0 has none).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> ops.convert_to_numpy(predicting_positions(np.array([[0.0, 1.0, 2.0]]))).tolist()
    [[1.0, 2.0, 0.0]]
    """
    weights = ops.cast(weights, "float32")
    if not shifted:
        return weights
    return ops.concatenate([weights[:, 1:], ops.zeros_like(weights[:, :1])], axis=1)


def weighted_mean(values, weights, normaliser=None):
    """`sum(values * weights) / normaliser` (default `sum(weights)`), 0 when it is 0."""
    weights = ops.cast(weights, "float32")
    normaliser = ops.sum(weights) if normaliser is None else normaliser
    return ops.divide_no_nan(ops.sum(ops.cast(values, "float32") * weights), normaliser)


def _row_weights(weights, row_mask):
    weights = ops.cast(weights, "float32")
    if row_mask is None:
        return weights
    return weights * ops.cast(row_mask, "float32")[:, None]


def ar_target_weights(token_ids, document_ids=None, pad_token_id=None, row_mask=None):
    """1 on the next-token targets `ar_loss` scores (not a document's first token, not
    padding, only in `row_mask`'s rows), 0 elsewhere: float32 `[batch, length]`."""
    excluded = () if pad_token_id is None else (pad_token_id,)
    return _row_weights(next_token_targets(token_ids, document_ids, excluded), row_mask)


def ar_loss(
    token_ids, logits, document_ids=None, pad_token_id=None, row_mask=None
):
    """Mean next-token cross-entropy: the logit at position i predicts token i + 1.

    Targets that start a new packed document, and padding targets, are not scored.

    Args:
        token_ids: int tensor `[batch, length]`, the clean input.
        logits: float tensor `[batch, length, vocabulary_size]` from a causal pass.
        document_ids: optional int tensor `[batch, length]`.
        pad_token_id: optional id never used as a target.
        row_mask: optional bool `[batch]`; only these rows are scored.

    Returns:
        scalar float32, `0` when nothing is scored.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> loss = ar_loss(np.array([[1, 2, 3]]), np.zeros((1, 3, 5), "float32"))
    >>> round(float(ops.convert_to_numpy(loss)), 4)  # log(5)
    1.6094
    """
    weights = ar_target_weights(token_ids, document_ids, pad_token_id, row_mask)
    cross_entropy = position_terms(logits, token_ids)["shifted"]["cross_entropy"]
    return weighted_mean(cross_entropy, predicting_positions(weights))


def md_target_weights(
    token_ids, masked_positions, mask_fraction, maskable_positions=None, shifted=True,
    row_mask=None,
):
    """`(weights, normaliser)` of `md_loss`: `1 / t_hat` on the masked positions of
    `row_mask`'s rows, and the number of their maskable positions."""
    if maskable_positions is None:
        batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        maskable_positions = ops.ones((batch_size, length), dtype="bool")
        if shifted:
            maskable_positions = next_token_targets(token_ids)
    mask_fraction = ops.cast(mask_fraction, "float32")
    weights = ops.cast(masked_positions, "float32") / mask_fraction[:, None]
    normaliser = ops.sum(_row_weights(maskable_positions, row_mask))
    return _row_weights(weights, row_mask), normaliser


def md_loss(
    token_ids,
    logits,
    masked_positions,
    mask_fraction,
    maskable_positions=None,
    shifted=True,
    row_mask=None,
):
    """Masked-diffusion loss: masked tokens' cross-entropy weighted by `1 / t_hat`.

    Normalised by the number of maskable positions of the scored rows (all `length - 1`
    predictable positions per row when `maskable_positions` is `None` and `shifted`,
    `length` when not shifted), so it estimates a per-token NLL bound.

    Args:
        token_ids: int tensor `[batch, length]`, the clean tokens (the targets).
        logits: float tensor `[batch, length, vocabulary_size]` from a bidirectional
            pass over the corrupted input.
        masked_positions: bool `[batch, length]`, the positions that were masked.
        mask_fraction: float `[batch]`, the realised mask fraction `t_hat` per row.
        maskable_positions: optional bool `[batch, length]`, the positions that could
            have been masked (the normaliser).
        shifted: `True`: position j is predicted by the logit at j - 1 (MNTP);
            `False`: by the logit at j (MDLM).
        row_mask: optional bool `[batch]`; only these rows are scored.

    Returns:
        scalar float32, `0` when nothing is scored.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> masked = np.array([[False, True, False, True]])
    >>> loss = md_loss(np.array([[1, 5, 6, 7]]), np.zeros((1, 4, 8), "float32"),
    ...                masked, np.array([0.5], "float32"))
    >>> round(float(ops.convert_to_numpy(loss)), 4)  # 2 * log(8) / 0.5 / 3
    2.7726
    """
    weights, normaliser = md_target_weights(
        token_ids, masked_positions, mask_fraction, maskable_positions, shifted, row_mask
    )
    alignment = "shifted" if shifted else "unshifted"
    cross_entropy = position_terms(logits, token_ids, (alignment,))[alignment]["cross_entropy"]
    return weighted_mean(cross_entropy, predicting_positions(weights, shifted), normaliser)


def z_loss(logits, predicted_positions, shifted=True):
    """Mean squared log-normaliser `logsumexp(logits)^2` over predicted positions.

    Args:
        logits: float tensor `[batch, length, vocabulary_size]`.
        predicted_positions: bool `[batch, length]`, positions j whose token is predicted.
        shifted: `True` when token j is predicted by the logit at j - 1.

    Returns:
        scalar float32.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> loss = z_loss(np.zeros((1, 2, 4), "float32"), np.array([[False, True]]))
    >>> round(float(ops.convert_to_numpy(loss)), 4)  # log(4) ** 2
    1.9218
    """
    squared = ops.square(_log_normalizer(logits))
    return weighted_mean(squared, predicting_positions(predicted_positions, shifted))


def token_accuracy(logits, token_ids, predicted_positions, shifted=True):
    """Share of predicted positions whose argmax logit is the true token.

    Args:
        logits: float tensor `[batch, length, vocabulary_size]`.
        token_ids: int tensor `[batch, length]`.
        predicted_positions: bool `[batch, length]`, positions j whose token is scored.
        shifted: `True` when token j is predicted by the logit at j - 1.

    Returns:
        scalar float32.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> logits = np.eye(3, dtype="float32")[None]  # position i predicts token i
    >>> acc = token_accuracy(logits, np.array([[0, 0, 1]]), np.array([[0, 1, 1]]))
    >>> float(ops.convert_to_numpy(acc))
    1.0
    """
    alignment = "shifted" if shifted else "unshifted"
    correct = position_terms(logits, token_ids, (alignment,))[alignment]["correct"]
    return weighted_mean(correct, predicting_positions(predicted_positions, shifted))
