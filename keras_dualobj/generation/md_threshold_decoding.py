"""Masked-diffusion decoding that reveals by confidence threshold, a varying number per step.

Fast-dLLM's parallel unmasking (Wu et al., 2025, "Fast-dLLM: Training-free
Acceleration of Diffusion LLM by Enabling KV Cache and Parallel Decoding"): at every
step, reveal every still-masked position of the current block whose proposed token
has probability above `threshold` (τ), and at least the most confident one. Confident
stretches are filled in one pass, uncertain ones one token at a time, so the number
of forward passes adapts to the text instead of being fixed by `reveal_schedule`.
τ = 1 reveals exactly one position per step, the most confident (the fixed
schedule with `num_steps = num_new_tokens`); τ = 0 reveals a whole block per step.

The step has fixed shapes (it compiles once); the Python loop around it reads back
whether the block still holds masks, one host sync per step.
"""

import numpy as np
from keras import ops

from keras_dualobj.generation.md_decoding import block_indices
from keras_dualobj.generation.md_decoding import propose_tokens
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int


def threshold_reveal(confidence, eligible, threshold):
    """Positions to reveal: eligible with `confidence > threshold`, and each row's most confident.

    Args:
        confidence: float `[B, L]` in `[0, 1]`.
        eligible: bool `[B, L]`, positions that may be revealed now.
        threshold: float τ in `[0, 1]`.

    Returns:
        bool `[B, L]`; at least one position per row that has an eligible one.

    Example:
    >>> import numpy as np
    >>> confidence = np.array([[0.95, 0.2, 0.8, 0.99]], "float32")
    >>> eligible = np.array([[1, 1, 1, 0]], bool)
    >>> np.asarray(threshold_reveal(confidence, eligible, 0.7)).tolist()
    [[True, False, True, False]]
    >>> np.asarray(threshold_reveal(confidence, eligible, 1.0)).tolist()
    [[True, False, False, False]]
    """
    eligible = ops.cast(eligible, "bool")
    confidence = ops.cast(confidence, "float32")
    # Confidences lie in [0, 1]; -1 ranks every ineligible position last.
    ranked = ops.where(eligible, confidence, -1.0)
    best = ops.one_hot(ops.argmax(ranked, axis=1), ops.shape(ranked)[1], dtype="bool")
    best = ops.logical_and(best, ops.any(eligible, axis=1, keepdims=True))
    return ops.logical_and(eligible, ops.logical_or(confidence > threshold, best))


def md_threshold_step(
    logits_fn, inputs, mask_token_id, seed_generator, temperature=0.0, shifted=True
):
    """One MD step revealing by `threshold_reveal` in the current block.

    Compilable (see `compile_decoding_function`).

    Args:
        logits_fn, mask_token_id, seed_generator, temperature, shifted: as in
            `md_decode_step`.
        inputs: dict of `token_ids`, `document_ids`, `block_ids`, `reveal_step`
            (as in `md_decode_step`), int32 scalars `step`, `block` and a float32
            scalar `threshold` (τ in `[0, 1]`; an input, so one compiled step serves
            every τ).

    Returns:
        dict with the updated `token_ids`, `reveal_step`, and `remaining`: int32
        scalar, positions of the block still masked.

    Example:
    >>> import numpy as np, keras
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> fill = np.array([[0, 0, 1, 1, 1]], bool)
    >>> inputs = {"token_ids": np.array([[1, 20, 4, 4, 4]], "int32"),
    ...           "document_ids": np.zeros((1, 5), "int32"),
    ...           "block_ids": block_indices(fill, 3),
    ...           "reveal_step": np.full((1, 5), -1, "int32"), "step": 0, "block": 0,
    ...           "threshold": np.float32(0.0)}
    >>> out = md_threshold_step(model.logits, inputs, 4, keras.random.SeedGenerator(0))
    >>> int(out["remaining"])
    0
    """
    token_ids = inputs["token_ids"]
    proposals, confidence = propose_tokens(
        logits_fn, token_ids, inputs["document_ids"], mask_token_id, seed_generator,
        temperature, shifted,
    )
    in_block = ops.equal(inputs["block_ids"], inputs["block"])
    eligible = ops.logical_and(ops.equal(token_ids, mask_token_id), in_block)
    reveal = threshold_reveal(confidence, eligible, inputs["threshold"])
    remaining = ops.logical_and(eligible, ops.logical_not(reveal))
    return {
        "token_ids": ops.where(reveal, proposals, token_ids),
        "reveal_step": ops.where(reveal, inputs["step"], inputs["reveal_step"]),
        "remaining": ops.sum(ops.cast(remaining, "int32")),
    }


def md_threshold_decode(
    step_function, token_ids, document_ids, fill_positions, block_length, threshold
):
    """Runs a compiled `md_threshold_step` block by block until no `<mask>` is left.

    Args:
        step_function: `md_threshold_step` with its model and options bound, compiled.
        token_ids: int32 `[B, L]`, `<mask>` on `fill_positions`.
        document_ids: int32 `[B, L]`.
        fill_positions: bool `[B, L]`; every row has the same number of them.
        block_length: int dividing that number (semi-autoregressive blocks).
        threshold: float τ in `[0, 1]`.

    Returns:
        `(token_ids, reveal_step, num_steps)`: NumPy int32 `[B, L]` twice (as
        `md_decode`) and the number of forward passes taken.

    Example:
    >>> import functools, numpy as np, keras
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> step = functools.partial(md_threshold_step, model.logits, mask_token_id=4,
    ...                          seed_generator=keras.random.SeedGenerator(0))
    >>> token_ids = np.array([[1, 20, 4, 4, 4, 4]], "int32")
    >>> tokens, reveal_step, num_steps = md_threshold_decode(
    ...     step, token_ids, np.zeros_like(token_ids), token_ids == 4, 2, threshold=1.0)
    >>> num_steps, sorted(reveal_step[0].tolist())
    (4, [-1, -1, 0, 1, 2, 3])
    """
    fill_positions = np.asarray(fill_positions, bool)
    counts = fill_positions.sum(axis=1)
    if counts.min() != counts.max() or counts.max() == 0:
        raise ValueError(
            "Every row must hold the same, non-zero number of positions to fill; "
            f"received {counts.tolist()}."
        )
    check_int("block_length", block_length, minimum=1)
    if counts[0] % block_length:
        raise ValueError(
            f"`block_length` must divide the number of positions to fill ({counts[0]}); "
            f"received block_length={block_length}."
        )
    threshold = check_float("threshold", threshold, minimum=0.0, maximum=1.0)
    constant = {
        "threshold": ops.convert_to_tensor(np.float32(threshold)),
        "document_ids": ops.convert_to_tensor(np.asarray(document_ids, "int32")),
        "block_ids": ops.convert_to_tensor(block_indices(fill_positions, block_length)),
    }
    state = {
        "token_ids": ops.convert_to_tensor(np.asarray(token_ids, "int32")),
        "reveal_step": ops.convert_to_tensor(np.full(fill_positions.shape, -1, "int32")),
    }
    step = 0
    for block in range(int(counts[0]) // block_length):
        # Each step reveals at least one position per row: at most `block_length` steps.
        for _ in range(block_length):
            scalars = {"step": np.int32(step), "block": np.int32(block)}
            scalars = {name: ops.convert_to_tensor(value) for name, value in scalars.items()}
            outputs = step_function({**state, **constant, **scalars})
            state = {name: outputs[name] for name in ("token_ids", "reveal_step")}
            step += 1
            if int(ops.convert_to_numpy(outputs["remaining"])) == 0:
                break
    return (
        ops.convert_to_numpy(state["token_ids"]),
        ops.convert_to_numpy(state["reveal_step"]),
        step,
    )
