"""The speculative-sampling acceptance rule, as pure functions of tensors.

A draft token `x` proposed with probability `q(x)` is kept with probability
`min(1, p(x) / q(x))`, where `p` is the target (here the AR face's) distribution at
that position. On the first rejection, a replacement is drawn from the residual
`max(0, p - q) / sum(max(0, p - q))` and the rest of the draft is discarded; if
every draft token is kept, one more token is drawn from `p` at the position after
the draft. Each emitted token is then distributed exactly as `p` given the tokens
before it (Leviathan et al., 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al., 2023, "Accelerating Large Language Model Decoding with
Speculative Sampling"): `q(v) min(1, p(v)/q(v)) + (1 - sum_x q(x) min(1, p(x)/q(x)))
r(v) = min(q(v), p(v)) + max(0, p(v) - q(v)) = p(v)`.

The random numbers are arguments, so each function is deterministic and can be
checked against a NumPy recomputation.
"""

from keras import ops


def acceptance_probabilities(target_probabilities, draft_probabilities, draft_tokens):
    """`min(1, p(x) / q(x))` for every draft token `x`.

    Args:
        target_probabilities: float `[B, k(+1), V]`, `p` at each draft position (a
            trailing extra position is ignored).
        draft_probabilities: float `[B, k, V]`, `q` at each draft position.
        draft_tokens: int `[B, k]`, the drafted tokens (drawn from `q`).

    Returns:
        float32 `[B, k]`.

    Example:
    >>> import numpy as np
    >>> p = np.array([[[0.2, 0.8], [0.5, 0.5]]], "float32")
    >>> q = np.array([[[0.4, 0.6], [0.5, 0.5]]], "float32")
    >>> np.round(np.asarray(acceptance_probabilities(p, q, np.array([[0, 1]]))), 3)
    array([[0.5, 1. ]], dtype=float32)
    """
    draft_tokens = ops.cast(draft_tokens, "int32")[..., None]
    num_draft = ops.shape(draft_tokens)[1]
    target = ops.cast(target_probabilities, "float32")[:, :num_draft]
    target = ops.squeeze(ops.take_along_axis(target, draft_tokens, axis=-1), axis=-1)
    draft = ops.cast(draft_probabilities, "float32")
    draft = ops.squeeze(ops.take_along_axis(draft, draft_tokens, axis=-1), axis=-1)
    # q(x) > 0 for a token drawn from q; the floor only guards division by zero.
    return ops.minimum(1.0, target / ops.maximum(draft, 1e-30))


def residual_distribution(target_probabilities, draft_probabilities):
    """`max(0, p - q)` normalised; `p` itself where `p == q` (nothing is ever rejected there).

    Args:
        target_probabilities: float `[..., V]`.
        draft_probabilities: float `[..., V]`, same shape.

    Returns:
        float32, same shape, rows summing to 1.

    Example:
    >>> import numpy as np
    >>> p, q = np.array([0.2, 0.5, 0.3], "float32"), np.array([0.4, 0.2, 0.4], "float32")
    >>> np.round(np.asarray(residual_distribution(p, q)), 3)
    array([0., 1., 0.], dtype=float32)
    """
    target = ops.cast(target_probabilities, "float32")
    residual = ops.maximum(target - ops.cast(draft_probabilities, "float32"), 0.0)
    total = ops.sum(residual, axis=-1, keepdims=True)
    return ops.where(total > 0.0, residual / ops.maximum(total, 1e-30), target)


def sample_categorical(probabilities, uniforms):
    """Inverse-CDF draws: the first id whose cumulative probability exceeds `u * total`.

    Args:
        probabilities: float `[..., V]`, non-negative (need not sum to 1).
        uniforms: float `[...]` in `[0, 1)`.

    Returns:
        int32 `[...]`.

    Example:
    >>> import numpy as np
    >>> probabilities = np.array([[0.25, 0.5, 0.25]] * 3, "float32")
    >>> np.asarray(sample_categorical(probabilities, np.array([0.1, 0.5, 0.9]))).tolist()
    [0, 1, 2]
    """
    probabilities = ops.cast(probabilities, "float32")
    cumulative = ops.cumsum(probabilities, axis=-1)
    threshold = ops.cast(uniforms, "float32")[..., None] * cumulative[..., -1:]
    token = ops.sum(ops.cast(cumulative <= threshold, "int32"), axis=-1)
    # Float round-off can leave `u * total` at the last cumulative value.
    return ops.minimum(token, ops.shape(probabilities)[-1] - 1)


def count_leading(accepted):
    """Number of leading `True`s of every row of a bool `[B, k]`.

    Example:
    >>> import numpy as np
    >>> np.asarray(count_leading(np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool))).tolist()
    [2, 0]
    """
    return ops.sum(ops.cumprod(ops.cast(accepted, "int32"), axis=1), axis=1)


def speculative_accept(
    target_probabilities,
    draft_probabilities,
    draft_tokens,
    acceptance_uniforms,
    sample_uniforms,
    forced=None,
):
    """Applies the acceptance rule to one draft per row.

    Args:
        target_probabilities: float `[B, k + 1, V]`: `p` at the `k` draft positions
            (given the draft before each) and at the position after the draft.
        draft_probabilities: float `[B, k, V]`: `q` that each draft token was drawn from.
        draft_tokens: int `[B, k]`.
        acceptance_uniforms: float `[B, k]` in `[0, 1)`: token `j` is kept when
            `u_j < min(1, p(x_j) / q(x_j))`.
        sample_uniforms: float `[B, k + 1]` in `[0, 1)`, for the replacement draws.
        forced: optional bool `[B, k]`: positions kept whatever `p` says (tokens the
            caller fixed, such as the rest of a longer prompt).

    Returns:
        `(num_accepted, replacements)`: int32 `[B]`, the number of leading draft
        tokens kept, and int32 `[B, k + 1]`, at each `j < k` a draw from the
        residual at `j` and at `k` a draw from `p`. Row `b` emits
        `draft_tokens[b, :n] + [replacements[b, n]]` with `n = num_accepted[b]`.

    Example:
    >>> import numpy as np
    >>> p = np.array([[[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]], "float32")
    >>> q = np.array([[[0.5, 0.5], [1.0, 0.0]]], "float32")
    >>> n, replacements = speculative_accept(p, q, np.array([[1, 0]]),
    ...                                      np.array([[0.9, 0.7]]), np.array([[0.1] * 3]))
    >>> int(np.asarray(n)[0]), int(np.asarray(replacements)[0, 1])  # x_1 kept w.p. 0.5
    (1, 1)
    """
    acceptance = acceptance_probabilities(target_probabilities, draft_probabilities, draft_tokens)
    accepted = ops.cast(acceptance_uniforms, "float32") < acceptance
    if forced is not None:
        accepted = ops.logical_or(accepted, ops.cast(forced, "bool"))
    num_draft = ops.shape(draft_probabilities)[1]
    target = ops.cast(target_probabilities, "float32")
    residual = residual_distribution(target[:, :num_draft], draft_probabilities)
    replacement_distributions = ops.concatenate([residual, target[:, num_draft:]], axis=1)
    replacements = sample_categorical(replacement_distributions, sample_uniforms)
    return count_leading(accepted), replacements
