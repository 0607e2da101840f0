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


def _shift_to_targets(logits):
    """Aligns logits so that entry j holds the logits predicting token j (from j - 1)."""
    return ops.concatenate([logits[:, :1], logits[:, :-1]], axis=1)


def _row_weights(weights, row_mask):
    weights = ops.cast(weights, "float32")
    if row_mask is None:
        return weights
    return weights * ops.cast(row_mask, "float32")[:, None]


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
    excluded = () if pad_token_id is None else (pad_token_id,)
    targets = next_token_targets(token_ids, document_ids, excluded)
    weights = _row_weights(targets, row_mask)
    cross_entropy = token_cross_entropy(_shift_to_targets(logits), token_ids)
    return ops.divide_no_nan(ops.sum(cross_entropy * weights), ops.sum(weights))


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
    if maskable_positions is None:
        batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        maskable_positions = ops.ones((batch_size, length), dtype="bool")
        if shifted:
            maskable_positions = next_token_targets(token_ids)
    if shifted:
        logits = _shift_to_targets(logits)
    mask_fraction = ops.cast(mask_fraction, "float32")
    masked_weights = ops.cast(masked_positions, "float32") / mask_fraction[:, None]
    masked_weights = _row_weights(masked_weights, row_mask)
    normaliser = ops.sum(_row_weights(maskable_positions, row_mask))
    cross_entropy = token_cross_entropy(logits, token_ids)
    return ops.divide_no_nan(ops.sum(cross_entropy * masked_weights), normaliser)


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
    if shifted:
        logits = _shift_to_targets(logits)
    weights = ops.cast(predicted_positions, "float32")
    squared = ops.square(_log_normalizer(logits))
    return ops.divide_no_nan(ops.sum(squared * weights), ops.sum(weights))


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
    if shifted:
        logits = _shift_to_targets(logits)
    predictions = ops.argmax(logits, axis=-1)
    correct = ops.equal(ops.cast(predictions, "int32"), ops.cast(token_ids, "int32"))
    weights = ops.cast(predicted_positions, "float32")
    return ops.divide_no_nan(
        ops.sum(ops.cast(correct, "float32") * weights), ops.sum(weights)
    )
