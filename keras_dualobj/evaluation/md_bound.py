"""The masked-diffusion bound on the negative log-likelihood: one stated estimator.

For the `n` scored positions of a row, a masked-diffusion model gives an upper bound
on `-log p(x)` (the ELBO of discrete masked diffusion; e.g. LLaDA eq. 12, MDLM):

    B(x) = E_{k ~ U{1..n}} E_{M ⊂ scored, |M| = k} [(n/k) Σ_{j ∈ M} -log q(x_j | x_visible)]

where `q` is the model's bidirectional prediction with the positions `M` replaced by
`<mask>` (shifted convention: `q(x_j | ·)` is read from the logits at `j - 1`). It is
a bound for *any* conditionals `q`, so it holds for the dual model as is. Only scored
positions are ever masked: with a prompt left visible it bounds `-log p(targets | rest)`.

The estimator, used by `DualLM.evaluate()` (compiled, in the test step),
`DualLM.score(mode="md")`, multiple choice and the lm-eval adapter:

- S = `num_samples` samples per row, evaluated as **one tiled batch** of `S · B` rows
  (row `s · B + b` is sample s of row b);
- **stratified** mask counts: sample s uses `k_s = 1 + ⌊(n·s + ⌊n·v⌋) / S⌋` with one
  offset `v ∈ [0, 1)` per row, i.e. `k = ⌈n·t⌉` for `t = (s + v) / S`, so `k` is
  uniform on `{1..n}` and the S samples cover the range of `k` evenly;
- the `k_s` scored positions with the lowest random scores are masked; the sample's
  value is `Y_s = (n / k_s) Σ_{j ∈ M_s} CE_j`;
- estimate `mean_s Y_s` (unbiased), standard error `std_s(Y_s, ddof=1) / sqrt(S)`
  (treats the stratified samples as independent, so it over-states the error:
  conservative); NaN for S = 1.

**Reproducibility.** The random numbers are not drawn from a generator but computed
by a counter-based integer hash of `(seed, the row's content, sample, position)` in
32-bit integer arithmetic (`mask_random_scores`). The row's content is its token ids
and scored positions up to its last scored position, so a row gets the same masks
whatever its batch, its place in the batch, the padding after it, the backend, or
whether it runs eagerly or compiled: batch 1 and batch 8 give the same numbers, and
the three backends differ only by float rounding of the forward pass. (Two identical
rows get identical masks; each row's estimate is still unbiased.) Random scores have
16 random bits above a 15-bit position, so rows may be at most 32,768 tokens long.
"""

import numpy as np
from keras import ops

from keras_dualobj.objectives.losses import token_cross_entropy

MAX_HASHED_LENGTH = 2**15
# Multipliers of the "lowbias32" integer hash (C. Wellons), as signed int32.
_HASH_MULTIPLIERS = (0x7FEB352D, 0x846CA68B - 2**32)
_GOLDEN = 0x9E3779B9 - 2**32


def _srl(x, bits):
    """Logical right shift of int32 (backends shift arithmetically)."""
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def hash_int32(x):
    """A 32-bit integer mix, wrapping int32 arithmetic; the same on every backend.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> ops.convert_to_numpy(hash_int32(np.array([0, 1], "int32"))).tolist()
    [0, 1753845952]
    """
    x = ops.cast(x, "int32")
    x = ops.bitwise_xor(x, _srl(x, 16))
    x = ops.multiply(x, ops.cast(_HASH_MULTIPLIERS[0], "int32"))
    x = ops.bitwise_xor(x, _srl(x, 15))
    x = ops.multiply(x, ops.cast(_HASH_MULTIPLIERS[1], "int32"))
    return ops.bitwise_xor(x, _srl(x, 16))


def row_keys(token_ids, target_mask, seed):
    """One int32 key per row from `seed`, its tokens and its scored positions.

    Only positions up to the row's last scored position count, so padding after it
    (or a longer batch) leaves the key unchanged.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> a = row_keys(np.array([[1, 5, 6, 3]]), np.array([[0, 1, 1, 0]]), 0)
    >>> b = row_keys(np.array([[1, 5, 6]]), np.array([[0, 1, 1]]), 0)
    >>> bool(ops.convert_to_numpy(a)[0] == ops.convert_to_numpy(b)[0])
    True
    """
    token_ids = ops.cast(token_ids, "int32")
    targets = ops.cast(target_mask, "int32")
    length = ops.shape(token_ids)[1]
    before_last = ops.flip(ops.cumsum(ops.flip(targets, axis=1), axis=1), axis=1) > 0
    positions = ops.arange(length, dtype="int32")[None, :]
    content = hash_int32(ops.add(ops.multiply(token_ids, 2), targets))
    content = hash_int32(ops.bitwise_xor(content, hash_int32(positions)))
    # Sums of 16-bit pieces stay below 2^31 for rows under 2^15 tokens: no overflow.
    low = ops.sum(ops.where(before_last, ops.bitwise_and(content, 0xFFFF), 0), axis=1)
    high = ops.sum(ops.where(before_last, _srl(content, 16), 0), axis=1)
    key = hash_int32(ops.bitwise_xor(ops.cast(high, "int32"), hash_int32(seed)))
    return hash_int32(ops.add(ops.cast(low, "int32"), ops.multiply(key, 3)))


def mask_random_scores(keys, num_samples, length):
    """Per sample and row: the stratum offset's 16 bits and unique position scores.

    Returns `(offset_bits, scores)`: int32 `[B]` in `[0, 2^16)` (`v = bits / 2^16`)
    and int32 `[S, B, L]`, 16 random bits above the position (ties impossible).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> bits, scores = mask_random_scores(np.array([7], "int32"), 2, 4)
    >>> tuple(ops.shape(scores)), sorted((ops.convert_to_numpy(scores)[0, 0] % 2**15).tolist())
    ((2, 1, 4), [0, 1, 2, 3])
    """
    offset_bits = _srl(hash_int32(ops.bitwise_xor(keys, _GOLDEN)), 16)
    samples = ops.arange(num_samples, dtype="int32")[:, None, None]
    positions = ops.arange(length, dtype="int32")[None, None, :]
    sample_keys = hash_int32(ops.add(keys[None, :, None], ops.multiply(samples, _GOLDEN)))
    mixed = hash_int32(ops.add(sample_keys, positions))
    scores = ops.add(ops.left_shift(_srl(mixed, 16), 15), positions)
    return offset_bits, scores


def stratified_mask_counts(num_scored, offset_bits, num_samples):
    """`k[s, b] = 1 + ⌊(n·s + ⌊n·v⌋) / S⌋`, uniform on `1..n` (0 when `n = 0`).

    Exact integer arithmetic (`n < 2^15`, `v = offset_bits / 2^16`).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> counts = stratified_mask_counts(np.array([4]), np.array([0]), 4)
    >>> ops.convert_to_numpy(counts)[:, 0].tolist()
    [1, 2, 3, 4]
    """
    num_scored = ops.cast(num_scored, "int32")[None, :]
    samples = ops.arange(num_samples, dtype="int32")[:, None]
    floor_nv = _srl(ops.multiply(num_scored, ops.cast(offset_bits, "int32")[None, :]), 16)
    counts = 1 + ops.floor_divide(num_scored * samples + floor_nv, num_samples)
    return ops.where(num_scored > 0, counts, 0)


def md_bound_masks(token_ids, target_mask, num_samples, seed):
    """The masks of the estimator, tiled: `(masked [S·B, L] bool, counts [S·B] int32)`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> masked, counts = md_bound_masks(np.array([[1, 5, 6, 7]]),
    ...                                 np.array([[0, 1, 1, 1]]), 3, seed=0)
    >>> ops.convert_to_numpy(counts).tolist(), ops.convert_to_numpy(masked).sum(1).tolist()
    ([1, 2, 3], [1, 2, 3])
    """
    target_mask = ops.cast(target_mask, "bool")
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    keys = row_keys(token_ids, target_mask, seed)
    offset_bits, scores = mask_random_scores(keys, num_samples, length)
    num_scored = ops.sum(ops.cast(target_mask, "int32"), axis=1)
    counts = stratified_mask_counts(num_scored, offset_bits, num_samples)
    scores = ops.where(target_mask[None], scores, 2**31 - 1)
    kth = ops.take_along_axis(
        ops.sort(scores, axis=-1), ops.maximum(counts - 1, 0)[:, :, None], axis=-1
    )
    masked = ops.logical_and(scores <= kth, target_mask[None])
    masked = ops.logical_and(masked, (counts > 0)[:, :, None])
    rows = num_samples * batch_size
    return ops.reshape(masked, (rows, length)), ops.reshape(counts, (rows,))


def bound_sample_values(cross_entropy, masked, counts, num_scored, num_samples):
    """`Y[s, b] = (n_b / k_sb) Σ_{masked j} CE_j`, `[S, B]` float32, from tiled inputs.

    `cross_entropy[r, j]` is `-log q(x_j)` for tiled row `r = s·B + b` (aligned to the
    token it scores, see `aligned_cross_entropy`), `masked` and `counts` come from
    `md_bound_masks`, `num_scored` `[B]` is `n`. Rows with `n = 0` give 0.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> values = bound_sample_values(np.ones((2, 3)), np.array([[1, 0, 0], [1, 1, 0]]),
    ...                              np.array([1, 2]), np.array([2]), num_samples=2)
    >>> ops.convert_to_numpy(values).tolist()  # n = 2: 2/1 * 1 and 2/2 * 2
    [[2.0], [2.0]]
    """
    cross_entropy = ops.cast(cross_entropy, "float32")
    masked = ops.cast(masked, "bool")
    rows = ops.shape(cross_entropy)[0]
    shape = (num_samples, rows // num_samples)
    masked_sum = ops.reshape(ops.sum(ops.where(masked, cross_entropy, 0.0), axis=1), shape)
    counts = ops.reshape(ops.cast(counts, "float32"), shape)
    num_scored = ops.cast(num_scored, "float32")[None, :]
    return masked_sum * ops.divide_no_nan(num_scored, counts)


def aligned_cross_entropy(logits, token_ids, shifted=True):
    """`CE[r, j] = -log q(x_j)`: from the logits at `j - 1` (shifted, column 0 is 0)
    or at `j` (unshifted).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> ce = aligned_cross_entropy(np.zeros((1, 3, 4), "float32"), np.array([[1, 2, 3]]))
    >>> np.round(ops.convert_to_numpy(ce).astype("float64"), 4).tolist()
    [[0.0, 1.3863, 1.3863]]
    """
    if not shifted:
        return token_cross_entropy(logits, token_ids)
    cross_entropy = token_cross_entropy(logits[:, :-1], token_ids[:, 1:])
    return ops.pad(cross_entropy, ((0, 0), (1, 0)))


def md_bound_forward(
    logits_fn, token_ids, target_mask, mask_token_id, num_samples, seed, shifted=True,
    document_ids=None,
):
    """The estimator's forward pass: one call of `logits_fn` on the `S · B` tiled rows.

    Bidirectional attention; usable inside a compiled function (`DualLM.evaluate`'s
    test step) or eagerly.

    Returns:
        dict of backend tensors: `values` `[S, B]` (the samples `Y`), `logits`,
        `token_ids` and `masked` of the tiled rows (for metrics such as accuracy).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> uniform = lambda ids, docs, prefix: ops.zeros(tuple(ids.shape) + (8,))
    >>> forward = md_bound_forward(uniform, np.array([[1, 5, 6]]), np.array([[0, 1, 1]]),
    ...                            mask_token_id=4, num_samples=2, seed=0)
    >>> tuple(ops.shape(forward["logits"])), tuple(ops.shape(forward["values"]))
    ((2, 3, 8), (2, 1))
    """
    token_ids = ops.cast(token_ids, "int32")
    if document_ids is None:
        document_ids = ops.zeros_like(token_ids)
    masked, counts = md_bound_masks(token_ids, target_mask, num_samples, seed)
    tiled_ids = ops.tile(token_ids, (num_samples, 1))
    inputs = ops.where(masked, mask_token_id, tiled_ids)
    length = ops.shape(token_ids)[1]
    logits = logits_fn(
        inputs,
        ops.tile(ops.cast(document_ids, "int32"), (num_samples, 1)),
        ops.full((ops.shape(inputs)[0],), length, dtype="int32"),
    )
    cross_entropy = aligned_cross_entropy(logits, tiled_ids, shifted)
    num_scored = ops.sum(ops.cast(target_mask, "int32"), axis=1)
    values = bound_sample_values(cross_entropy, masked, counts, num_scored, num_samples)
    return {"values": values, "logits": logits, "token_ids": tiled_ids, "masked": masked}


def md_bound_values(
    logits_fn, token_ids, target_mask, mask_token_id, num_samples, seed, shifted=True,
    document_ids=None,
):
    """The sample values `Y [S, B]` of the estimator (see `md_bound_forward`).

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> uniform = lambda ids, docs, prefix: ops.zeros(tuple(ids.shape) + (8,))
    >>> values = md_bound_values(uniform, np.array([[1, 5, 6]]), np.array([[0, 1, 1]]),
    ...                          mask_token_id=4, num_samples=2, seed=0)
    >>> np.round(ops.convert_to_numpy(values)[:, 0].astype("float64"), 4).tolist()  # 2 log 8
    [4.1589, 4.1589]
    """
    return md_bound_forward(
        logits_fn, token_ids, target_mask, mask_token_id, num_samples, seed, shifted,
        document_ids,
    )["values"]


def summarize_bound(values):
    """`{"nll", "standard_error"}` (NumPy float64 `[B]`) from sample values `[S, B]`.

    Example:
    >>> import numpy as np
    >>> result = summarize_bound(np.array([[1.0], [3.0]]))
    >>> float(result["nll"][0]), round(float(result["standard_error"][0]), 4)
    (2.0, 1.0)
    """
    values = np.asarray(ops.convert_to_numpy(values), "float64")
    num_samples = values.shape[0]
    if num_samples > 1:
        standard_error = values.std(axis=0, ddof=1) / np.sqrt(num_samples)
    else:
        standard_error = np.full(values.shape[1:], np.nan)
    return {"nll": values.mean(axis=0), "standard_error": standard_error}
