"""Masked-diffusion (MD) decoding: start from `<mask>`s, reveal a few per step.

The sampler of LLaDA (Nie et al., 2025, "Large Language Diffusion Models"), adapted
to the dual model's conventions. The positions to fill start as `<mask>`. At every
step one bidirectional forward pass proposes a token for every position (argmax, or
a Gumbel-max sample at `temperature > 0`); of the still-masked positions of the
current block, the `k` with the highest *confidence* (the proposed token's
probability) or `k` at random are revealed, the rest stay masked. The positions to
fill are split into consecutive blocks of `block_length` (semi-autoregressive
decoding): block `b + 1` is only touched once block `b` is complete. With the
*shifted* MD convention (the model's default, masked next-token prediction) the
token at position `j` is read from the logits at `j - 1`; with the unshifted
(MDLM) one from the logits at `j`.

The number revealed per step is fixed in advance (`reveal_schedule`), so every
step has the same shapes and the step compiles once; the Python loop around it
costs one dispatch per step next to a full forward pass.
"""

import numpy as np
from keras import ops
from keras import random

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

REMASKING = ("confidence", "random")
# Logit given to `<mask>` so that decoding never proposes it: a revealed `<mask>`
# could not be told apart from a position still to fill.
EXCLUDED_LOGIT = -1e9


def reveal_schedule(num_new_tokens, num_steps, block_length=None):
    """`(block, count)` for every step: reveal `count` positions of `block`.

    The new tokens form `num_new_tokens / block_length` blocks, each decoded in
    `num_steps / num_blocks` steps; within a block the counts differ by at most one,
    larger first (as LLaDA's `get_num_transfer_tokens`). So `num_steps =
    num_new_tokens` reveals exactly one position per step.

    Args:
        num_new_tokens: int >= 1, positions to fill.
        num_steps: int in `[1, num_new_tokens]`.
        block_length: optional int dividing `num_new_tokens`; `None` = one block.

    Returns:
        list of `(block_index, count)` of length `num_steps`.

    Example:
    >>> reveal_schedule(num_new_tokens=8, num_steps=4, block_length=4)
    [(0, 2), (0, 2), (1, 2), (1, 2)]
    >>> reveal_schedule(num_new_tokens=5, num_steps=2)
    [(0, 3), (0, 2)]
    """
    check_int("num_new_tokens", num_new_tokens, minimum=1)
    check_int("num_steps", num_steps, minimum=1)
    if num_steps > num_new_tokens:
        raise ValueError(
            f"`num_steps` must be between 1 and the number of tokens to generate "
            f"({num_new_tokens}); received num_steps={num_steps}."
        )
    if block_length is None:
        block_length = num_new_tokens
    check_int("block_length", block_length, minimum=1)
    if num_new_tokens % block_length:
        raise ValueError(
            f"`block_length` must divide the number of tokens to generate "
            f"({num_new_tokens}); received block_length={block_length}."
        )
    num_blocks = num_new_tokens // block_length
    if num_steps % num_blocks:
        raise ValueError(
            f"`num_steps` must be a multiple of the number of blocks ({num_new_tokens} "
            f"tokens / block_length {block_length} = {num_blocks}); received "
            f"num_steps={num_steps}."
        )
    steps_per_block = num_steps // num_blocks
    base, extra = divmod(block_length, steps_per_block)
    counts = [base + (step < extra) for step in range(steps_per_block)]
    return [(block, count) for block in range(num_blocks) for count in counts]


def block_indices(fill_positions, block_length):
    """Block of every position to fill (its rank among them // `block_length`), else -1.

    Example:
    >>> import numpy as np
    >>> block_indices(np.array([[0, 1, 1, 1, 1, 0]], bool), 2).tolist()
    [[-1, 0, 0, 1, 1, -1]]
    """
    fill_positions = np.asarray(fill_positions, bool)
    rank = np.cumsum(fill_positions, axis=1) - 1
    return np.where(fill_positions, rank // block_length, -1).astype("int32")


def check_md_options(remasking, temperature):
    """Validates the options of `md_decode_step`; returns the temperature as a float.

    Example:
    >>> check_md_options("random", 1)
    1.0
    """
    check_choice("remasking", remasking, REMASKING)
    return check_float("temperature", temperature, minimum=0.0)


def propose_tokens(
    logits_fn, token_ids, document_ids, mask_token_id, seed_generator, temperature, shifted
):
    """One bidirectional pass: a proposed token for every position and its probability.

    The proposal is the argmax, or a Gumbel-max draw at `temperature > 0`; `<mask>`
    is never proposed. The confidence is the temperature-free probability of the
    proposal (LLaDA's "low_confidence" remasking score).

    Returns:
        `(proposals int32 [B, L], confidence float32 [B, L])`, aligned with the
        positions they fill (shifted back by one for the shifted convention).

    Example:
    >>> import numpy as np, keras
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> token_ids = np.array([[1, 20, 4, 4]], "int32")
    >>> proposals, confidence = propose_tokens(
    ...     model.logits, token_ids, np.zeros_like(token_ids), 4,
    ...     keras.random.SeedGenerator(0), temperature=0.0, shifted=True)
    >>> bool((np.asarray(proposals) != 4).all()), tuple(confidence.shape)
    (True, (1, 4))
    """
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    logits = logits_fn(
        token_ids, document_ids, ops.full((batch_size,), length, dtype="int32")
    )
    logits = ops.cast(logits, "float32")
    if shifted:
        logits = ops.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    return proposals_from_logits(logits, mask_token_id, seed_generator, temperature)


def proposals_from_logits(logits, mask_token_id, seed_generator, temperature):
    """`propose_tokens` from logits already aligned with the positions they fill.

    Example:
    >>> import numpy as np, keras
    >>> logits = np.log(np.array([[[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]], "float32"))
    >>> proposals, confidence = proposals_from_logits(
    ...     logits, 0, keras.random.SeedGenerator(0), temperature=0.0)
    >>> np.asarray(proposals).tolist(), np.round(np.asarray(confidence, "float64"), 2).tolist()
    ([[2, 1]], [[0.78, 0.75]])
    """
    logits = ops.cast(logits, "float32")
    vocabulary_size = ops.shape(logits)[2]
    is_mask_token = ops.equal(ops.arange(vocabulary_size, dtype="int32"), mask_token_id)
    logits = ops.where(is_mask_token, EXCLUDED_LOGIT, logits)
    if temperature > 0.0:
        # Gumbel-max: argmax(logits / T + Gumbel noise) is a draw from softmax(logits / T).
        uniform = random.uniform(
            ops.shape(logits), minval=1e-20, maxval=1.0, seed=seed_generator
        )
        proposals = ops.argmax(logits / temperature - ops.log(-ops.log(uniform)), axis=-1)
    else:
        proposals = ops.argmax(logits, axis=-1)
    proposals = ops.cast(proposals, "int32")
    probabilities = ops.softmax(logits, axis=-1)
    confidence = ops.take_along_axis(probabilities, proposals[..., None], axis=-1)
    return proposals, ops.squeeze(confidence, axis=-1)


def md_decode_step(
    logits_fn,
    inputs,
    mask_token_id,
    seed_generator,
    remasking="confidence",
    temperature=0.0,
    shifted=True,
):
    """One MD decoding step: propose tokens everywhere, reveal `num_reveal` of them.

    Compilable (see `compile_decoding_function`).

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`; called with fully bidirectional attention.
        inputs: dict of `token_ids` int32 `[B, L]` (the canvas, `<mask>` where still
            to fill), `document_ids` int32 `[B, L]` (padding in its own document),
            `block_ids` int32 `[B, L]` (see `block_indices`), `reveal_step` int32
            `[B, L]` (-1 until revealed), and int32 scalars `step`, `block`,
            `num_reveal`.
        mask_token_id: id of `<mask>`.
        seed_generator: `keras.random.SeedGenerator` for sampling and random remasking.
        remasking: `"confidence"` or `"random"`.
        temperature: float >= 0; 0 is argmax.
        shifted: whether the logits at `j - 1` predict the token at `j`.

    Returns:
        dict with the updated `token_ids` and `reveal_step`.

    Example:
    >>> import numpy as np, keras
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> fill = np.array([[0, 0, 1, 1, 1]], bool)
    >>> inputs = {"token_ids": np.array([[1, 20, 4, 4, 4]], "int32"),
    ...           "document_ids": np.zeros((1, 5), "int32"),
    ...           "block_ids": block_indices(fill, 3),
    ...           "reveal_step": np.full((1, 5), -1, "int32"),
    ...           "step": 0, "block": 0, "num_reveal": 2}
    >>> out = md_decode_step(model.logits, inputs, mask_token_id=4,
    ...                      seed_generator=keras.random.SeedGenerator(0))
    >>> int((np.asarray(out["reveal_step"]) == 0).sum())  # two of three revealed
    2
    """
    token_ids = inputs["token_ids"]
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    proposals, confidence = propose_tokens(
        logits_fn, token_ids, inputs["document_ids"], mask_token_id, seed_generator,
        temperature, shifted,
    )
    if remasking == "random":
        confidence = random.uniform((batch_size, length), seed=seed_generator)

    still_masked = ops.logical_and(
        ops.equal(token_ids, mask_token_id), ops.greater_equal(inputs["block_ids"], 0)
    )
    eligible = ops.logical_and(still_masked, ops.equal(inputs["block_ids"], inputs["block"]))
    # Confidences lie in [0, 1]; -1 ranks every ineligible position last.
    confidence = ops.where(eligible, confidence, -1.0)
    ranks = ops.argsort(ops.argsort(-confidence, axis=1), axis=1)
    reveal = ops.logical_and(eligible, ops.less(ranks, inputs["num_reveal"]))
    return {
        "token_ids": ops.where(reveal, proposals, token_ids),
        "reveal_step": ops.where(reveal, inputs["step"], inputs["reveal_step"]),
    }


def md_decode(step_function, token_ids, document_ids, fill_positions, schedule, block_length):
    """Runs a compiled `md_decode_step` over a `reveal_schedule`.

    Args:
        step_function: `md_decode_step` with its model and options bound, compiled.
        token_ids: int32 `[B, L]`, `<mask>` on `fill_positions`.
        document_ids: int32 `[B, L]`.
        fill_positions: bool `[B, L]`; every row has the same number of them.
        schedule: output of `reveal_schedule`.
        block_length: the block length the schedule was built with.

    Returns:
        `(token_ids, reveal_step)` as NumPy int32 `[B, L]`; `reveal_step` is the step
        at which each position was revealed, -1 outside `fill_positions`.

    Example:
    >>> import functools, numpy as np, keras
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> step = functools.partial(md_decode_step, model.logits, mask_token_id=4,
    ...                          seed_generator=keras.random.SeedGenerator(0))
    >>> token_ids = np.array([[1, 20, 4, 4, 4, 4]], "int32")
    >>> tokens, reveal_step = md_decode(step, token_ids, np.zeros_like(token_ids),
    ...                                 token_ids == 4, reveal_schedule(4, 2), 4)
    >>> sorted(reveal_step[0].tolist()), bool((tokens != 4).all())
    ([-1, -1, 0, 0, 1, 1], True)
    """
    # Tensors, not NumPy values, so that tf.function does not retrace per step.
    constant = {
        "document_ids": ops.convert_to_tensor(np.asarray(document_ids, "int32")),
        "block_ids": ops.convert_to_tensor(block_indices(fill_positions, block_length)),
    }
    state = {
        "token_ids": ops.convert_to_tensor(np.asarray(token_ids, "int32")),
        "reveal_step": ops.convert_to_tensor(np.full(np.shape(token_ids), -1, "int32")),
    }
    for step, (block, count) in enumerate(schedule):
        scalars = {"step": step, "block": block, "num_reveal": count}
        scalars = {
            name: ops.convert_to_tensor(np.int32(value)) for name, value in scalars.items()
        }
        state = step_function({**state, **constant, **scalars})
    return (
        ops.convert_to_numpy(state["token_ids"]),
        ops.convert_to_numpy(state["reveal_step"]),
    )
