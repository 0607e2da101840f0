"""The exact likelihood of a text under a deterministic-order MD decoder (DUEL).

A masked-diffusion decoder that reveals positions in an order fixed by the canvas
(the most confident proposals first, left to right, block by block) and draws each
revealed token from the model is a sequential sampler: its probability of writing a
continuation `x` is the product, over its steps, of the model's probabilities of the
tokens of `x` it reveals at that step, given the canvas so far (arXiv 2603.01367,
"DUEL"). So the decoder one generates with has an exact likelihood, one forward pass
per step, where the ELBO is a bound and the pseudo-likelihood a score.

`md_likelihood_step` is one such step: the decoder's own choice of positions (by the
temperature-free probability of the most probable proposal, `<mask>` excluded, as
`md_decode_step` ranks them at temperature 0), with the true tokens written there
instead of the proposals and their log-probabilities added up.
"""

import numpy as np
from keras import ops

from keras_dualobj.generation.md_block_cache import block_reveal
from keras_dualobj.generation.md_decoding import EXCLUDED_LOGIT
from keras_dualobj.generation.md_decoding import block_indices


def md_likelihood_step(logits_fn, inputs, mask_token_id, shifted=True):
    """One step of the decoder on a canvas, revealing the true tokens and scoring them.

    Compilable (see `compile_decoding_function`).

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`; called with fully bidirectional attention.
        inputs: dict of `token_ids` int32 `[B, L]` (the canvas, `<mask>` where still
            to reveal), `targets` int32 `[B, L]` (the text being scored),
            `document_ids`, `block_ids` (see `block_indices`), `log_likelihood`
            float32 `[B]` (so far), int32 scalars `block`, `num_reveal` and a
            float32 scalar `threshold` (2.0 for none).
        mask_token_id: id of `<mask>`.
        shifted: whether the logits at `j - 1` predict the token at `j`.

    Returns:
        dict with the updated `token_ids` and `log_likelihood`, and `remaining`
        (int32 scalar: positions of the block still masked).
    """
    token_ids, targets = inputs["token_ids"], inputs["targets"]
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    logits = logits_fn(
        token_ids, inputs["document_ids"], ops.full((batch_size,), length, dtype="int32")
    )
    logits = ops.cast(logits, "float32")
    if shifted:
        logits = ops.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    vocabulary_size = ops.shape(logits)[2]
    is_mask_token = ops.equal(ops.arange(vocabulary_size, dtype="int32"), mask_token_id)
    log_probabilities = ops.log_softmax(ops.where(is_mask_token, EXCLUDED_LOGIT, logits))
    confidence = ops.exp(ops.max(log_probabilities, axis=-1))
    in_block = ops.equal(inputs["block_ids"], inputs["block"])
    eligible = ops.logical_and(ops.equal(token_ids, mask_token_id), in_block)
    reveal = block_reveal(confidence, eligible, inputs["num_reveal"], inputs["threshold"])
    target_log_probabilities = ops.squeeze(
        ops.take_along_axis(log_probabilities, targets[..., None], axis=-1), axis=-1
    )
    gained = ops.sum(ops.where(reveal, target_log_probabilities, 0.0), axis=1)
    remaining = ops.logical_and(eligible, ops.logical_not(reveal))
    return {
        "token_ids": ops.where(reveal, targets, token_ids),
        "log_likelihood": inputs["log_likelihood"] + gained,
        "remaining": ops.sum(ops.cast(remaining, "int32")),
    }


def md_likelihood(step_function, targets, document_ids, fill_positions, block_length,
                  counts=None, threshold=None, mask_token_id=4):
    """Runs a compiled `md_likelihood_step` over the blocks: the log-likelihood per row.

    Args:
        step_function: `md_likelihood_step` with its model bound, compiled.
        targets: int32 `[B, L]`, the full texts (context and continuation).
        document_ids: int32 `[B, L]`.
        fill_positions: bool `[B, L]`, the continuation; every row has as many.
        block_length: int dividing that number.
        counts: positions revealed per step of a block (a `reveal_schedule`'s), or
            `None` with a `threshold` τ (every position above τ, at least one).
        threshold: float τ in `[0, 1]`, or `None`.
        mask_token_id: id of `<mask>`.

    Returns:
        NumPy float64 `[B]`: log p(continuation | context), nats.
    """
    fill_positions = np.asarray(fill_positions, bool)
    num_fill = int(fill_positions.sum(axis=1)[0])
    state = {
        "token_ids": ops.convert_to_tensor(np.where(fill_positions, mask_token_id, targets).astype("int32")),
        "log_likelihood": ops.zeros((fill_positions.shape[0],), "float32"),
    }
    constant = {
        "targets": ops.convert_to_tensor(np.asarray(targets, "int32")),
        "document_ids": ops.convert_to_tensor(np.asarray(document_ids, "int32")),
        "block_ids": ops.convert_to_tensor(block_indices(fill_positions, block_length)),
        # Confidences lie in [0, 1]: a threshold of 2 reveals by the counts alone.
        "threshold": ops.convert_to_tensor(np.float32(2.0 if threshold is None else threshold)),
    }
    for block in range(num_fill // block_length):
        block_counts = counts if counts is not None else [1] * block_length
        for count in block_counts:
            scalars = {"block": np.int32(block), "num_reveal": np.int32(count)}
            scalars = {name: ops.convert_to_tensor(value) for name, value in scalars.items()}
            outputs = step_function({**state, **constant, **scalars})
            state = {name: outputs[name] for name in ("token_ids", "log_likelihood")}
            if counts is None and int(ops.convert_to_numpy(outputs["remaining"])) == 0:
                break
    return ops.convert_to_numpy(state["log_likelihood"]).astype("float64")
