"""Semi-autoregressive MD decoding with a prefix KV cache: the text before a block is encoded once.

Plain MD decoding (`md_decoding`) runs a bidirectional pass over the whole canvas at
every step, although in semi-autoregressive decoding (blocks of `block_length` new
positions filled one after another) only the current block changes. Here, as in
Fast-dLLM's prefix cache (Wu et al., 2025), each block starts with one pass over the
whole canvas that fills the KV cache; the block's later steps run only the block's
positions (a window) against that cache.

**What this approximates.** The model was trained with full bidirectional attention:
every position sees every other. To make the cached keys and values exact rather
than stale, decoding uses a *block-causal* mask (`block_causal_mask`): the prefix
(the prompt and the finished blocks) attends only within itself, bidirectionally;
the current block attends to the prefix and to itself; blocks not started yet are
seen by nobody. Against full attention it changes two things: the prefix no longer
sees the `<mask>`s and draft tokens after it, and the block no longer sees the
`<mask>`s of later blocks (which carry only "more text follows"). With the shifted
convention the logits at `j - 1` predict `j`, so the attention block is the decoding
block moved back by one position (the last prefix token reads the block).

The cache is exact for that mask: the cached decoder gives the tokens of the same
decoder without a cache (`use_cache=False`, a full pass at every step), whatever
the blocks; what the mask itself costs in quality against full attention is
measured in `benchmarks/speculative_decoding.py` (AR loss of the written text).

Each step reveals, among the still-masked positions of the block, the `num_reveal`
most confident (a `reveal_schedule`) plus every one whose confidence exceeds
`threshold` (Fast-dLLM's parallel unmasking; τ = 1 is the schedule alone). Rows may
have prompts of different lengths: the window covers every row's block (its length
is `block_length` plus the spread of the prompt lengths).
"""

import numpy as np
from keras import ops
from keras import random

from keras_dualobj.generation.md_decoding import proposals_from_logits


def block_causal_mask(prefix_end, block_end, query_start, query_length, key_length):
    """Attention mask of block-causal MD decoding, bool `[B, query_length, key_length]`.

    The query at absolute position `i = query_start + q` of row `b` sees key `j` iff
    `j < block_end[b]` when `i >= prefix_end[b]` (the block and after), else iff
    `j < prefix_end[b]` (the prefix sees only itself).

    Example:
    >>> import numpy as np
    >>> mask = block_causal_mask(np.array([2]), np.array([4]), 0, 5, 5)
    >>> np.asarray(mask, int)[0].tolist()
    [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    """
    prefix_end = ops.cast(prefix_end, "int32")[:, None]
    block_end = ops.cast(block_end, "int32")[:, None]
    queries = query_start + ops.arange(query_length, dtype="int32")[None, :]
    limit = ops.where(queries >= prefix_end, block_end, prefix_end)
    keys = ops.arange(key_length, dtype="int32")[None, None, :]
    return keys < limit[:, :, None]


def block_reveal(confidence, eligible, num_reveal, threshold):
    """The `num_reveal` most confident eligible positions of each row, and any above `threshold`.

    Example:
    >>> import numpy as np
    >>> confidence = np.array([[0.9, 0.2, 0.8, 0.99]], "float32")
    >>> eligible = np.array([[1, 1, 1, 0]], bool)
    >>> np.asarray(block_reveal(confidence, eligible, 1, 0.5)).tolist()
    [[True, False, True, False]]
    >>> np.asarray(block_reveal(confidence, eligible, 2, 1.0)).tolist()
    [[True, False, True, False]]
    """
    eligible = ops.cast(eligible, "bool")
    confidence = ops.cast(confidence, "float32")
    # Confidences lie in [0, 1]; -1 ranks every ineligible position last.
    ranked = ops.where(eligible, confidence, -1.0)
    ranks = ops.argsort(ops.argsort(-ranked, axis=1), axis=1)
    chosen = ops.logical_or(ops.less(ranks, num_reveal), confidence > threshold)
    return ops.logical_and(eligible, chosen)


def md_block_step(call_with_cache, inputs, mask_token_id, seed_generator, options):
    """One step of block-causal MD decoding; a full pass (fills the cache) or the window only.

    Compilable (see `compile_decoding_function`).

    Args:
        call_with_cache: e.g. `DualLM.call_with_cache` (takes an `attention_mask`).
        inputs: dict of `token_ids` int32 `[B, L]` (the canvas), `cache`,
            `reveal_step` int32 `[B, L]`, `prefix_end` and `block_end` int32 `[B]`
            (the attention block `[prefix_end, block_end)`), `window` int32 `[W]`
            (the positions run, `window_start + arange(W)`; `W = L` for a full pass
            from 0), int32 scalars `step` and `num_reveal`, float32 scalar `threshold`.
        mask_token_id: id of `<mask>`.
        seed_generator: `keras.random.SeedGenerator`, for sampling and random remasking.
        options: `(temperature, remasking, shifted)`.

    Returns:
        dict of `token_ids`, `reveal_step`, `cache` and `remaining` (int32 scalar,
        masked positions of the block not yet revealed, summed over rows).
    """
    temperature, remasking, shifted = options
    token_ids, cache = inputs["token_ids"], inputs["cache"]
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    window_length = ops.shape(inputs["window"])[0]
    start = inputs["window"][0]
    window_tokens = ops.slice(token_ids, [0, start], [batch_size, window_length])
    mask = block_causal_mask(
        inputs["prefix_end"], inputs["block_end"], start, window_length, length
    )
    logits, _, cache = call_with_cache(window_tokens, cache, start, attention_mask=mask)
    logits = ops.cast(logits, "float32")
    shift = 1 if shifted else 0
    if shifted:
        # The logits at `j - 1` fill `j`: aligned within the window (its first
        # position, a prefix position, is left unfilled).
        logits = ops.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    proposals, confidence = proposals_from_logits(
        logits, mask_token_id, seed_generator, temperature
    )
    full_proposals = ops.slice_update(
        ops.zeros_like(token_ids), [0, start], ops.cast(proposals, "int32")
    )
    full_confidence = ops.slice_update(
        ops.zeros((batch_size, length), "float32"), [0, start], confidence
    )
    if remasking == "random":
        full_confidence = random.uniform((batch_size, length), seed=seed_generator)
    positions = ops.arange(length, dtype="int32")[None, :]
    in_block = ops.logical_and(
        positions >= inputs["prefix_end"][:, None] + shift,
        positions < inputs["block_end"][:, None],
    )
    eligible = ops.logical_and(in_block, ops.equal(token_ids, mask_token_id))
    reveal = block_reveal(full_confidence, eligible, inputs["num_reveal"], inputs["threshold"])
    remaining = ops.logical_and(eligible, ops.logical_not(reveal))
    return {
        "token_ids": ops.where(reveal, full_proposals, token_ids),
        "reveal_step": ops.where(reveal, inputs["step"], inputs["reveal_step"]),
        "cache": cache,
        "remaining": ops.sum(ops.cast(remaining, "int32")),
    }


def md_block_cache_decode(step_function, token_ids, prompt_lengths, cache, plan, shifted,
                          use_cache=True):
    """Runs a compiled `md_block_step` block by block over a right-padded canvas.

    Args:
        step_function: `md_block_step` with its model and options bound, compiled.
        token_ids: int32 `[B, L]`: each row's prompt, then `<mask>`s, then padding.
        prompt_lengths: int `[B]`, every >= 1; the masks start there.
        cache: an empty KV cache for `token_ids` (see `DualLM._build_cache`).
        plan: `(num_new_tokens, block_length, counts, threshold)`: `counts` lists the
            positions revealed per step of a block (a `reveal_schedule`'s), or is
            `None` with a `threshold` τ in `[0, 1]` (reveal above τ, at least one).
        shifted: whether the logits at `j - 1` predict the token at `j`.
        use_cache: `False` runs the full pass at every step (the uncached reference).

    Returns:
        `(token_ids, reveal_step, num_full_passes, num_window_passes)`, NumPy int32
        `[B, L]` twice and two ints.
    """
    num_new_tokens, block_length, counts, threshold = plan
    prompt_lengths = np.asarray(prompt_lengths, "int32")
    shift = 1 if shifted else 0
    length = np.shape(token_ids)[1]
    spread = int(prompt_lengths.max() - prompt_lengths.min())
    window_length = block_length + spread + shift
    state = {
        "token_ids": ops.convert_to_tensor(np.asarray(token_ids, "int32")),
        "reveal_step": ops.convert_to_tensor(np.full(np.shape(token_ids), -1, "int32")),
        "cache": cache,
    }
    full_window = ops.convert_to_tensor(np.arange(length, dtype="int32"))
    threshold = np.float32(1.0 if threshold is None else threshold)
    step, passes = 0, [0, 0]
    for block in range(num_new_tokens // block_length):
        prefix_end = prompt_lengths + block * block_length - shift
        window_start = int(prefix_end.min())
        window = np.arange(window_start, window_start + window_length, dtype="int32")
        constant = {
            "prefix_end": ops.convert_to_tensor(prefix_end),
            "block_end": ops.convert_to_tensor(prefix_end + shift + block_length),
            "threshold": ops.convert_to_tensor(threshold),
        }
        block_counts = counts if counts is not None else [1] * block_length
        for index, count in enumerate(block_counts):
            full = index == 0 or not use_cache
            scalars = {"step": np.int32(step), "num_reveal": np.int32(count)}
            scalars = {name: ops.convert_to_tensor(value) for name, value in scalars.items()}
            outputs = step_function({
                **state, **constant, **scalars,
                "window": full_window if full else ops.convert_to_tensor(window),
            })
            state = {name: outputs[name] for name in ("token_ids", "reveal_step", "cache")}
            passes[0 if full else 1] += 1
            step += 1
            if counts is None and int(ops.convert_to_numpy(outputs["remaining"])) == 0:
                break
    return (
        ops.convert_to_numpy(state["token_ids"]),
        ops.convert_to_numpy(state["reveal_step"]),
        passes[0],
        passes[1],
    )


def empty_cache(backbone, batch_size, length):
    """A KV cache of zeros `backbone.cache_shape(batch, length)` for `backbone`.

    The one place the cache's shape is written (`DualLM._build_cache` and the MD
    block cache start from it).

    Example:
    >>> from keras_dualobj import DualBackbone
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
    ...                         hidden_dim=16, intermediate_dim=32)
    >>> tuple(empty_cache(backbone, 3, 8).shape)
    (3, 2, 2, 8, 2, 8)
    """
    return ops.zeros(backbone.cache_shape(batch_size, length), dtype=backbone.compute_dtype)
