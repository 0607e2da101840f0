"""Autoregressive decoding with a KV cache and keras-hub samplers.

The loop is keras-hub's: a `keras_hub.samplers.Sampler` calls `next(prompt, cache,
index)` for the logits of position `index` and writes its choice there, never over
prompt positions. Prompts of different lengths share one right-padded batch: decoding
starts at the shortest prompt, and longer prompts keep their own tokens until they
run out (`prompt_mask`). Causal attention makes the padding after a prompt invisible
to it, so no left-padding or per-row position shift is needed.
"""

from keras import ops


def ar_decode(
    call_with_cache,
    build_cache,
    inputs,
    sampler,
    stop_token_ids=None,
    model=None,
):
    """Fills every non-prompt position of `inputs["token_ids"]`, left to right, cached.

    Compilable (see `compile_decoding_function`): one cache-seeding forward pass over
    the whole padded batch, then one single-token cached pass per new position.

    Args:
        call_with_cache: `(token_ids [B, n], cache, cache_update_index) -> (logits,
            hidden_states, cache)`, e.g. `DualLM.call_with_cache`.
        build_cache: `token_ids -> (hidden_states, cache)`, e.g. `DualLM._build_cache`.
        inputs: dict with `token_ids` int32 `[B, L]` (prompts right-padded to the
            final length) and `prompt_mask` bool `[B, L]` (True on prompt tokens).
        sampler: a `keras_hub.samplers.Sampler`.
        stop_token_ids: optional tuple of ids; the loop ends once every row has
            produced one (positions after it are left to the caller to drop).
        model: the model, so that the JAX loop can thread its variables.

    Returns:
        int32 `[B, L]`.

    Example:
    >>> import numpy as np, keras_hub
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> inputs = {"token_ids": np.array([[1, 20, 3, 3], [1, 30, 31, 3]], "int32"),
    ...           "prompt_mask": np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)}
    >>> tokens = ar_decode(model.call_with_cache, model._build_cache, inputs,
    ...                    keras_hub.samplers.GreedySampler())
    >>> tuple(tokens.shape), np.asarray(tokens)[1, :3].tolist()
    ((2, 4), [1, 30, 31])
    """
    token_ids, prompt_mask = inputs["token_ids"], inputs["prompt_mask"]
    hidden_states, cache = build_cache(token_ids)
    index = ops.min(ops.sum(ops.cast(prompt_mask, "int32"), axis=-1))

    def next(prompt, cache, index):
        # The token at `index - 1` is the newest; its keys and values go in the cache.
        cache_update_index = index - 1
        batch_size = ops.shape(prompt)[0]
        current = ops.slice(prompt, [0, cache_update_index], [batch_size, 1])
        logits, hidden_states, cache = call_with_cache(current, cache, cache_update_index)
        return ops.squeeze(logits, axis=1), ops.squeeze(hidden_states, axis=1), cache

    return sampler(
        next=next,
        prompt=token_ids,
        cache=cache,
        index=index,
        mask=prompt_mask,
        stop_token_ids=stop_token_ids,
        hidden_states=hidden_states,
        model=model,
    )


def ar_decode_uncached(logits_fn, inputs, sampler, stop_token_ids=None, model=None):
    """`ar_decode` without a cache: a full causal pass over all `L` positions per token.

    The baseline of the generation benchmark (fixed shapes, so it compiles once too),
    and a reference when checking the cache.

    Args:
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`.
        inputs, sampler, stop_token_ids, model: as in `ar_decode`.

    Returns:
        int32 `[B, L]`.

    Example:
    >>> import numpy as np, keras_hub
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> inputs = {"token_ids": np.array([[1, 20, 3, 3]], "int32"),
    ...           "prompt_mask": np.array([[1, 1, 0, 0]], bool)}
    >>> greedy = keras_hub.samplers.GreedySampler()
    >>> uncached = ar_decode_uncached(model.logits, inputs, greedy)
    >>> cached = ar_decode(model.call_with_cache, model._build_cache, inputs, greedy)
    >>> np.asarray(uncached).tolist() == np.asarray(cached).tolist()
    True
    """
    token_ids, prompt_mask = inputs["token_ids"], inputs["prompt_mask"]
    batch_size = ops.shape(token_ids)[0]
    document_ids = ops.zeros_like(token_ids)
    causal = ops.zeros((batch_size,), dtype="int32")
    index = ops.min(ops.sum(ops.cast(prompt_mask, "int32"), axis=-1))

    def next(prompt, cache, index):
        logits = logits_fn(prompt, document_ids, causal)
        vocabulary_size = ops.shape(logits)[2]
        logits = ops.slice(logits, [0, index - 1, 0], [batch_size, 1, vocabulary_size])
        return ops.squeeze(logits, axis=1), None, cache

    return sampler(
        next=next,
        prompt=token_ids,
        index=index,
        mask=prompt_mask,
        stop_token_ids=stop_token_ids,
        model=model,
    )
