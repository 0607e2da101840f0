"""Which positions each objective predicts, and the masked-diffusion corruption.

All functions are pure functions of tensors (`keras.ops` + `keras.random`), so they run
unchanged on TensorFlow, JAX and PyTorch and inside compiled training steps.

Conventions (DESIGN.md §1): a row of `token_ids` has shape `[batch, length]`. In the
*shifted* convention (the paper's masked next-token prediction, MNTP) the logit at
position `i` predicts token `i + 1`; in the *unshifted* (standard MDLM) convention the
logit at `i` predicts token `i` itself.
"""

from keras import ops
from keras import random
from keras.random import SeedGenerator

# Smallest realised mask fraction; the reference uses t_hat = (1 - eps) * k / n + eps
# so that the 1 / t_hat weight stays finite.
MASK_FRACTION_EPSILON = 1e-4


def _as_seed_generator(seed):
    # An integer seed reused for several draws would give identical streams.
    if isinstance(seed, SeedGenerator):
        return seed
    return SeedGenerator(seed)


def _same_document_as_previous(token_ids, document_ids):
    """`[batch, length]` bool: position j > 0 and its document equals position j-1's."""
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    first_column = ops.zeros((batch_size, 1), dtype="bool")
    if document_ids is None:
        rest = ops.ones((batch_size, length - 1), dtype="bool")
    else:
        rest = ops.equal(document_ids[:, 1:], document_ids[:, :-1])
    return ops.concatenate([first_column, rest], axis=1)


def _is_any_of(token_ids, ids):
    result = ops.zeros(ops.shape(token_ids), dtype="bool")
    for token_id in ids:
        result = ops.logical_or(result, ops.equal(token_ids, token_id))
    return result


def next_token_targets(token_ids, document_ids=None, exclude_token_ids=()):
    """Positions whose token is a next-token target (predicted from position j - 1).

    Position `j` is a target when `j >= 1`, it lies in the same packed document as
    position `j - 1` (predicting the first token of a new document would cross the
    document mask) and its token is not in `exclude_token_ids` (e.g. padding).

    Args:
        token_ids: int tensor `[batch, length]`.
        document_ids: optional int tensor `[batch, length]`; equal ids mark one document.
        exclude_token_ids: token ids that are never targets.

    Returns:
        bool tensor `[batch, length]`; column 0 is always `False`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> targets = next_token_targets(
    ...     np.array([[1, 7, 8, 1, 9]]), np.array([[0, 0, 0, 1, 1]]))
    >>> ops.convert_to_numpy(targets).astype(int).tolist()
    [[0, 1, 1, 0, 1]]
    """
    targets = _same_document_as_previous(token_ids, document_ids)
    excluded = _is_any_of(token_ids, exclude_token_ids)
    return ops.logical_and(targets, ops.logical_not(excluded))


def maskable_positions(
    token_ids, document_ids=None, special_token_ids=(), shifted=True
):
    """Positions the masked-diffusion objective may mask (and then predicts).

    Special tokens are never masked. In the shifted convention a masked position must
    also be predictable from its left neighbour in the same document (see
    `next_token_targets`); in the unshifted convention every non-special position is.

    Args:
        token_ids: int tensor `[batch, length]`.
        document_ids: optional int tensor `[batch, length]`.
        special_token_ids: ids that are never masked (`<s>`, `</s>`, `<pad>`, `<mask>`).
        shifted: `True` for masked next-token prediction, `False` for standard MDLM.

    Returns:
        bool tensor `[batch, length]`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> maskable = maskable_positions(np.array([[1, 7, 8, 2]]), special_token_ids=(1, 2))
    >>> ops.convert_to_numpy(maskable).astype(int).tolist()
    [[0, 1, 1, 0]]
    """
    if shifted:
        return next_token_targets(token_ids, document_ids, special_token_ids)
    return ops.logical_not(_is_any_of(token_ids, special_token_ids))


def sample_masked_positions(maskable, seed, mask_rate=None, exact_bound=False):
    """Draws which positions of each row are masked.

    Per row with `n` maskable positions, `t ~ U(0, 1)` (or the given `mask_rate`):

    - training (the reference recipe, `exact_bound=False`): `u ~ U(0, 1)`,
      `k = clip(floor(n * t + u), 1, n)` and the weight of the MD loss is `1 / t_hat`
      with `t_hat = (1 - 1e-4) * k / n + 1e-4`;
    - evaluation (`exact_bound=True`): `k = max(1, ceil(n * t))`, exactly uniform on
      `1..n`, and `t_hat = k / n`, so that the MD loss is an unbiased Monte-Carlo
      estimate of the bound `(1/n) sum_k E[sum over the k masked tokens of CE] / (k/n)`.
      (The training rule gives k = 1 weight 1.5/n and k = n weight 0.5/n, which puts
      its expectation slightly below the bound.)

    The `k` maskable positions with the lowest uniform scores are masked. Rows with no
    maskable position mask nothing (`k = 0`).

    Args:
        maskable: bool tensor `[batch, length]` (see `maskable_positions`).
        seed: a `keras.random.SeedGenerator` or an integer seed.
        mask_rate: optional float tensor `[batch]` of `t` values in `[0, 1]`, e.g. for
            stratified estimates; drawn uniformly when `None`.
        exact_bound: use the evaluation rule above instead of the training rule.

    Returns:
        `(masked_positions, mask_fraction)`: bool `[batch, length]` and float32 `[batch]`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> maskable = np.ones((2, 8), dtype=bool)
    >>> masked, t_hat = sample_masked_positions(maskable, seed=0)
    >>> ops.convert_to_numpy(masked).shape, ops.convert_to_numpy(t_hat).shape
    ((2, 8), (2,))
    """
    seed = _as_seed_generator(seed)
    maskable = ops.cast(maskable, "bool")
    batch_size, length = ops.shape(maskable)[0], ops.shape(maskable)[1]
    if mask_rate is None:
        mask_rate = random.uniform((batch_size,), seed=seed)
    mask_rate = ops.cast(mask_rate, "float32")
    scores = random.uniform((batch_size, length), seed=seed)

    num_maskable = ops.sum(ops.cast(maskable, "float32"), axis=1)
    if exact_bound:
        num_masked = ops.ceil(num_maskable * mask_rate)
    else:
        offset = random.uniform((batch_size,), seed=seed)
        num_masked = ops.floor(num_maskable * mask_rate + offset)
    num_masked = ops.minimum(ops.maximum(num_masked, 1.0), num_maskable)

    # Non-maskable positions get a score above every uniform draw, so they sort last.
    scores = ops.where(maskable, scores, 2.0)
    sorted_scores = ops.sort(scores, axis=1)
    kth_index = ops.cast(ops.maximum(num_masked - 1.0, 0.0), "int32")
    threshold = ops.take_along_axis(sorted_scores, kth_index[:, None], axis=1)
    masked = ops.logical_and(scores <= threshold, maskable)
    masked = ops.logical_and(masked, (num_masked > 0.0)[:, None])

    mask_fraction = ops.divide_no_nan(num_masked, num_maskable)
    if exact_bound:
        return masked, mask_fraction
    eps = MASK_FRACTION_EPSILON
    return masked, (1.0 - eps) * mask_fraction + eps


def sample_ar_rows(batch_size, ar_fraction, seed):
    """Chooses which rows of a batch train the autoregressive objective.

    `floor(ar_fraction * batch_size + u)` rows, `u ~ U(0, 1)`, are chosen at random, so
    the AR share is exactly `ar_fraction` in expectation even when
    `ar_fraction * batch_size` is not an integer; `ar_fraction = 1` gives all rows and
    `ar_fraction = 0` none.

    Args:
        batch_size: int or scalar int tensor.
        ar_fraction: float in `[0, 1]`.
        seed: a `keras.random.SeedGenerator` or an integer seed.

    Returns:
        bool tensor `[batch_size]`, `True` for AR rows.

    Example:
    >>> from keras import ops
    >>> rows = sample_ar_rows(8, 0.5, seed=0)
    >>> int(ops.convert_to_numpy(ops.sum(ops.cast(rows, "int32"))))
    4
    """
    seed = _as_seed_generator(seed)
    offset = random.uniform((), seed=seed)
    num_ar_rows = ops.floor(ar_fraction * ops.cast(batch_size, "float32") + offset)
    scores = random.uniform((batch_size,), seed=seed)
    ranks = ops.argsort(ops.argsort(scores))
    return ops.cast(ranks, "float32") < num_ar_rows
