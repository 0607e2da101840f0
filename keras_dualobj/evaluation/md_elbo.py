"""The masked-diffusion bound on the negative log-likelihood, with a stated estimator.

For the `n` scored positions of a row, a masked-diffusion model gives an upper bound
on `-log p(x)` (the ELBO of discrete masked diffusion; e.g. LLaDA eq. 12, MDLM):

    B(x) = E_{k ~ U{1..n}} E_{M ⊂ scored, |M| = k} [(n/k) Σ_{j ∈ M} -log q(x_j | x_visible)]

where `q` is the model's bidirectional prediction with the positions `M` replaced by
`<mask>` (shifted convention: `q(x_j | ·)` is read from the logits at `j - 1`). It is
a bound for *any* conditionals `q` (Jensen over the orders in which positions could
be revealed), so it holds for the dual model as is.

Estimator (`md_nll_bound`):
- `num_samples` = S Monte-Carlo samples per row, all from `numpy.random.default_rng(seed)`,
  so masks are identical across backends and runs;
- **stratified** mask levels: sample s of row b uses `t = (s + v_b) / S` with one
  `v_b ~ U(0, 1)` per row, and `k = ceil(n · t)`, so `k` is exactly uniform on
  `{1..n}` and the S samples cover the range of `k` evenly;
- exactly `k` of the scored positions, chosen uniformly, are masked; the sample's
  value is `Y_s = (n / k) Σ_{j ∈ M} CE_j`;
- estimate `mean_s Y_s` (unbiased), standard error `std_s(Y_s, ddof=1) / sqrt(S)`,
  which treats the stratified samples as independent and so over-states the error
  (conservative). With S = 1 the standard error is NaN.

This is the rule of `sample_masked_positions(..., exact_bound=True)` (which
`DualLM.evaluate` uses inside the compiled test step), here in NumPy for scoring
arbitrary rows; the training default (`exact_bound=False`,
`k = clip(floor(n t + u), 1, n)`, weights from `t_hat` with a 1e-4 floor) is fine for a
training loss but not exactly the bound.
"""

import math

import numpy as np
from keras import ops

from keras_dualobj.evaluation.likelihood import call_logits
from keras_dualobj.evaluation.likelihood import check_scoring_inputs
from keras_dualobj.evaluation.likelihood import target_cross_entropy
from keras_dualobj.objectives.losses import token_cross_entropy
from keras_dualobj.utils.validation import check_int


def stratified_mask_counts(num_scored, num_samples, rng):
    """`k[s, b]` uniform on `{1..n_b}`, one stratum of `t` per sample.

    Example:
    >>> import numpy as np
    >>> stratified_mask_counts(np.array([4]), 4, np.random.default_rng(0))[:, 0].tolist()
    [1, 2, 3, 4]
    """
    offsets = rng.uniform(size=num_scored.shape)
    mask_rates = (np.arange(num_samples)[:, None] + offsets[None, :]) / num_samples
    counts = np.ceil(num_scored[None, :] * mask_rates).astype("int64")
    return np.clip(counts, 1, np.maximum(num_scored, 1)[None, :])


def md_nll_bound(
    logits_fn,
    token_ids,
    target_mask,
    mask_token_id,
    num_samples=16,
    seed=0,
    shifted=True,
    document_ids=None,
    checked=False,
):
    """Monte-Carlo estimate of the MD bound on `-log p` of the target tokens, per row.

    Only the target positions are ever masked, so with a prompt left visible this
    bounds the conditional `-log p(targets | rest)`. See the module docstring for the
    estimator.

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`; called with fully bidirectional attention.
        token_ids: int `[B, L]`.
        target_mask: bool `[B, L]`, the positions scored (and masked).
        mask_token_id: id of `<mask>`.
        num_samples: int >= 1, masks per row (one forward pass each).
        seed: int (or a sequence of ints, for `numpy.random.default_rng`).
        shifted: whether the logits at `j - 1` predict the token at `j`.
        document_ids: optional int `[B, L]`.
        checked: the arrays already passed `check_scoring_inputs`.

    Returns:
        dict of NumPy `[B]` arrays: `nll` (the bound's estimate, nats),
        `standard_error`, `num_tokens`.

    Example:
    >>> import numpy as np
    >>> uniform = lambda ids, docs, prefix: np.zeros(ids.shape + (8,), "float32")
    >>> result = md_nll_bound(uniform, np.array([[1, 5, 6]]), np.array([[0, 1, 1]]),
    ...                       mask_token_id=4, num_samples=4)
    >>> round(float(result["nll"][0]), 4), float(result["standard_error"][0])
    (4.1589, 0.0)
    """
    if not checked:
        token_ids, target_mask, document_ids = check_scoring_inputs(
            token_ids, target_mask, document_ids
        )
    check_int("num_samples", num_samples, minimum=1)
    rng = np.random.default_rng(seed)
    batch_size, length = token_ids.shape
    num_scored = target_mask.sum(axis=1)
    counts = stratified_mask_counts(num_scored, num_samples, rng)
    prefix_lengths = np.full((batch_size,), length, "int32")
    values = np.zeros((num_samples, batch_size), "float64")
    for sample in range(num_samples):
        scores = np.where(target_mask, rng.uniform(size=target_mask.shape), np.inf)
        ranks = np.argsort(np.argsort(scores, axis=1), axis=1)
        masked = target_mask & (ranks < counts[sample][:, None])
        inputs = np.where(masked, mask_token_id, token_ids).astype("int32")
        logits = call_logits(logits_fn, inputs, document_ids, prefix_lengths)
        if shifted:
            cross_entropy = target_cross_entropy(logits, token_ids)
        else:
            cross_entropy = token_cross_entropy(logits, token_ids)
            cross_entropy = ops.convert_to_numpy(cross_entropy).astype("float64")
        weights = num_scored / counts[sample]
        values[sample] = weights * np.sum(cross_entropy * masked, axis=1)
    if num_samples > 1:
        standard_error = values.std(axis=0, ddof=1) / math.sqrt(num_samples)
    else:
        standard_error = np.full((batch_size,), np.nan)
    return {
        "nll": values.mean(axis=0),
        "standard_error": standard_error,
        "num_tokens": num_scored,
    }

