"""Self-speculative decoding in one model pass per iteration: verify this draft, draft the next.

Why: on a CPU at small sizes a cached pass costs about the same for 1 or 17 query
tokens (the fixed per-pass work dominates), so the `"cached"` draft mode of
`speculative`, which runs two passes per iteration (draft, then verify), needs more
than two tokens per iteration just to break even with AR decoding. Here
(`draft_mode="fused"`) each iteration runs **one** cached causal pass over

    [token at index - 1, d_1 .. d_k, <mask> x (k + 1)]

at positions `index - 1 ..`: the outputs at the first `k + 1` queries are exactly the
AR verification of the draft `d` (causal attention: the masks after them are
invisible), and the outputs at the masks are the MD face's draft of the *next* `k`
positions, made as if the whole draft were accepted, with a `<mask>` standing in
for the AR face's bonus token (still unknown inside the pass). When every row
accepted the whole draft, that is the next draft; otherwise the next draft is all
`<mask>`s, which the AR face rejects at once (one token committed, as an AR step)
while its masks draft afresh from the committed text.

The output is the AR face's greedy output token for token, as for every draft mode
(the verification is the same); only greedy decoding (`temperature = 0`) is
supported. The masks' keys and values written into the cache beyond the committed
text are overwritten by the next pass before any query can see them (the cache's
causal mask), as with rejected draft tokens.
"""

from keras import ops

from keras_dualobj.generation.speculative_acceptance import count_leading

_EXCLUDED_LOGIT = -1e9


def fused_speculative_decode(
    call_with_cache,
    build_cache,
    inputs,
    draft_length,
    mask_token_id,
    shifted=True,
    stop_token_ids=None,
    loop_runner=None,
    model=None,
):
    """`speculative_decode` (greedy) with one model pass per iteration; see the module docstring.

    Args and returns as `speculative_decode` (no `logits_fn`, `draft_steps`,
    `temperature`); `loop_runner` is a keras-hub `Sampler` (`make_loop_runner`).

    Example:
    >>> import numpy as np, keras_hub
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> from keras_dualobj.generation import ar_decode
    >>> from keras_dualobj.generation.speculative import make_loop_runner
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> inputs = {"token_ids": np.array([[1, 20, 3, 3, 3, 3, 3]], "int32"),
    ...           "prompt_mask": np.array([[1, 1, 0, 0, 0, 0, 0]], bool)}
    >>> outputs = fused_speculative_decode(model.call_with_cache, model._build_cache,
    ...     inputs, 3, mask_token_id=4, loop_runner=make_loop_runner())
    >>> greedy = ar_decode(model.call_with_cache, model._build_cache, inputs,
    ...                    keras_hub.samplers.GreedySampler())
    >>> np.asarray(outputs["token_ids"]).tolist() == np.asarray(greedy).tolist()
    True
    """
    k = draft_length
    token_ids = ops.cast(inputs["token_ids"], "int32")
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    scratch = 2 * k + 2
    tokens = ops.pad(token_ids, [[0, 0], [0, scratch]])
    prompt_mask = ops.pad(ops.cast(inputs["prompt_mask"], "bool"), [[0, 0], [0, scratch]])
    _, cache = build_cache(tokens)
    start = ops.cast(ops.min(ops.sum(ops.cast(inputs["prompt_mask"], "int32"), axis=-1)), "int32")
    offsets = ops.arange(k + 1, dtype="int32")[None, :]
    masks = ops.full((batch_size, k), mask_token_id, dtype="int32")
    stop_ids = None if not stop_token_ids else ops.array(stop_token_ids, dtype="int32")
    # Unshifted MD reads a position's token from its own output, one query later.
    shift_offset = 0 if shifted else 1

    def cond(tokens, cache, index, *counters):
        return _not_finished(tokens, index, length, prompt_mask, stop_ids)

    def body(tokens, cache, index, draft, num_passes, num_accepted):
        state_draft = draft
        # Prompt positions keep the prompt: in the draft and in the mask block.
        window = ops.slice(tokens, [0, index], [batch_size, 2 * k + 1])
        window_prompt = ops.slice(prompt_mask, [0, index], [batch_size, 2 * k + 1])
        planned = ops.concatenate([draft, masks, masks[:, :1]], axis=1)
        planned = ops.where(window_prompt, window, planned)
        previous = ops.slice(tokens, [0, index - 1], [batch_size, 1])
        logits, _, cache = call_with_cache(
            ops.concatenate([previous, planned], axis=1), cache, index - 1
        )
        logits = ops.cast(logits, "float32")
        replacements = ops.cast(ops.argmax(logits[:, : k + 1], axis=-1), "int32")
        draft = planned[:, :k]
        agree = ops.equal(draft, replacements[:, :k])
        accepted = count_leading(ops.logical_or(agree, window_prompt[:, :k]))
        advance = ops.min(accepted) + 1
        committed = ops.where(
            offsets < accepted[:, None], ops.pad(draft, [[0, 0], [0, 1]]), replacements
        )
        committed = ops.where(window_prompt[:, : k + 1], window[:, : k + 1], committed)
        current = window[:, : k + 1]
        tokens = ops.slice_update(
            tokens, [0, index], ops.where(offsets < advance, committed, current)
        )
        vocabulary_size = ops.shape(logits)[2]
        is_mask = ops.equal(ops.arange(vocabulary_size, dtype="int32"), mask_token_id)
        # The outputs from query offset `advance` on draft positions `index + advance ..`;
        # valid for a row whose query at that offset holds its committed token or a
        # `<mask>` standing for it (see `_valid_next_draft`).
        next_logits = ops.slice(
            logits, [0, advance + shift_offset, 0], [batch_size, k, vocabulary_size]
        )
        next_logits = ops.where(is_mask, _EXCLUDED_LOGIT, next_logits)
        next_draft = ops.cast(ops.argmax(next_logits, axis=-1), "int32")
        valid = _valid_next_draft(state_draft, accepted, advance, k, mask_token_id)
        next_draft = ops.where(valid[:, None], next_draft, masks)
        return (
            tokens,
            cache,
            index + advance,
            next_draft,
            num_passes + 1,
            num_accepted + ops.sum(accepted),
        )

    zero = ops.convert_to_tensor(0, dtype="int32")
    tokens, _, index, _, num_passes, num_accepted = loop_runner.run_loop(
        cond,
        body,
        loop_vars=(tokens, cache, start, masks, zero, zero),
        maximum_iterations=length - start,
        model=model,
    )
    return {
        "token_ids": tokens[:, :length],
        "num_verify_passes": num_passes,
        "num_positions": ops.minimum(index, length) - start,
        "num_accepted": num_accepted,
    }


def _valid_next_draft(draft, accepted, advance, draft_length, mask_token_id):
    """Rows whose next draft (the outputs from query offset `advance` on) saw only committed text.

    The query at offset `advance` (position `index + advance - 1`, the last committed
    one) must hold the committed token or a `<mask>` standing for it: true when the
    whole draft was accepted (the mask block follows), when the draft was all
    `<mask>`s, or when the row accepted beyond the batch's shortest acceptance.

    Example:
    >>> import numpy as np
    >>> draft = np.array([[7, 8], [4, 4], [7, 9]], "int32")
    >>> np.asarray(_valid_next_draft(draft, np.array([0, 0, 1]), 1, 2, 4)).tolist()
    [False, True, True]
    """
    was_masks = ops.all(ops.equal(draft, mask_token_id), axis=1)
    accepted_beyond = ops.greater(accepted, advance - 1)
    whole = ops.equal(advance, draft_length + 1)
    return ops.logical_or(ops.logical_or(was_masks, accepted_beyond), whole)


def _not_finished(tokens, index, length, prompt_mask, stop_ids):
    """The loop's condition: positions left, and (with stop ids) a row without a stop token.

    Example:
    >>> import numpy as np
    >>> tokens = np.array([[1, 9, 2, 5]], "int32")
    >>> bool(_not_finished(tokens, 3, 4, np.array([[1, 0, 0, 0]], bool), np.array([2])))
    False
    """
    not_done = index < length
    if stop_ids is None:
        return not_done
    positions = ops.arange(ops.shape(tokens)[1], dtype="int32")[None, :]
    generated = ops.logical_and(ops.logical_not(prompt_mask), positions < index)
    generated = ops.logical_and(generated, positions < length)
    is_stop = ops.any(ops.equal(ops.convert_to_tensor(tokens)[..., None], stop_ids), axis=-1)
    finished = ops.all(ops.any(ops.logical_and(is_stop, generated), axis=-1))
    return ops.logical_and(not_done, ops.logical_not(finished))
