"""AR generation: the KV-cache forward pass and the compiled left-to-right decoding loop.

`call_with_cache` / `_build_cache` are the model's call functions for decoding (as in
keras-hub's `CausalLM`); `keras_dualobj.generation.ar_decoding` runs the loop with a
keras-hub sampler choosing each token. `DualLM.generate(..., mode="ar")` is the entry
point.
"""

import numpy as np
from keras import ops

from keras_dualobj.generation.ar_decoding import ar_decode
from keras_dualobj.generation.ar_decoding import ar_decode_uncached
from keras_dualobj.generation.ar_decoding import SAMPLERS
from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.generation.speculative import speculative_generate
from keras_dualobj.layers.dual_attention import writes_cache_in_place
from keras_dualobj.models.task_inputs import check_sequence_length


class ARGeneration:
    """Mixin: autoregressive decoding of `DualLM` with a KV cache."""

    def call_with_cache(self, token_ids, cache, cache_update_index, attention_mask=None):
        """Causal forward pass of new tokens against a KV cache (AR decoding).

        Args:
            token_ids: int `[batch, n]`, the tokens at positions
                `cache_update_index .. cache_update_index + n - 1`.
            cache: float `backbone.cache_shape(batch, max_length)`.
            cache_update_index: int or scalar int tensor.
            attention_mask: optional bool `[batch, n, max_length]` in place of the
                causal mask over the cache (the MD block cache's block-causal mask,
                `keras_dualobj.generation.md_block_cache`).

        Returns:
            `(logits [batch, n, vocab], hidden_states [batch, n, hidden], cache)`.

        Example:
        >>> import numpy as np
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> _, cache = model._build_cache(np.array([[1, 20, 21, 3]], "int32"))
        >>> logits, _, cache = model.call_with_cache(np.array([[22]], "int32"), cache, 3)
        >>> tuple(logits.shape)
        (1, 1, 64)
        """
        batch_size, query_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        max_length = ops.shape(cache)[3]
        if attention_mask is None:
            query_positions = cache_update_index + ops.arange(query_length, dtype="int32")
            key_positions = ops.arange(max_length, dtype="int32")
            # Keys beyond a query's position are stale or padding: causal over the cache.
            attention_mask = key_positions[None, None, :] <= query_positions[None, :, None]
            attention_mask = ops.broadcast_to(
                attention_mask, (batch_size, query_length, max_length)
            )
        if writes_cache_in_place():
            cache = ops.convert_to_tensor(cache)  # the layers write into its views
        hidden_states = self.backbone.token_embedding(token_ids)
        caches = []
        for i, block in enumerate(self.backbone.transformer_layers):
            hidden_states, layer_cache = block(
                hidden_states,
                attention_mask=attention_mask,
                cache=cache[:, i, ...],
                cache_update_index=cache_update_index,
            )
            caches.append(layer_cache)
        hidden_states = self.backbone.final_norm(hidden_states)
        logits = self.backbone.token_embedding(hidden_states, reverse=True)
        if writes_cache_in_place():
            # Each layer wrote into its view `cache[:, i]`: no copy of the whole cache.
            return logits, hidden_states, cache
        return logits, hidden_states, ops.stack(caches, axis=1)

    def _build_cache(self, token_ids):
        """An empty cache for `token_ids` `[batch, max_length]`, seeded by one causal pass."""
        backbone = self.backbone
        shape = backbone.cache_shape(ops.shape(token_ids)[0], ops.shape(token_ids)[1])
        cache = ops.zeros(shape, dtype=backbone.compute_dtype)
        _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
        return hidden_states, cache

    def _generate_ar_rows(self, rows, options):
        """`generate(mode="ar" | "speculative")` on prompt rows; each row cut at its end.

        With `max_new_tokens` every row gets that many new tokens at most; with
        `max_length` (keras-hub's meaning) every row is continued up to that length.
        """
        prompt_lengths = np.array([len(row) for row in rows])
        if options.max_length is not None:
            length = options.max_length
            if length <= prompt_lengths.max():
                raise ValueError(
                    f"max_length={length} leaves no room after the longest prompt "
                    f"({int(prompt_lengths.max())} tokens)."
                )
            ends = np.full_like(prompt_lengths, length)
            what = f"max_length ({length})"
        else:
            length = int(prompt_lengths.max()) + options.max_new_tokens
            ends = prompt_lengths + options.max_new_tokens
            what = (
                f"the longest prompt ({int(prompt_lengths.max())} tokens) + "
                f"max_new_tokens ({options.max_new_tokens})"
            )
        check_sequence_length(self.backbone, length, what)
        token_ids = pad_rows(rows, length, self.pad_token_id)
        prompt_mask = np.arange(length)[None, :] < prompt_lengths[:, None]
        if options.mode == "speculative":
            token_ids, _ = speculative_generate(
                self,
                token_ids,
                prompt_mask,
                draft_length=options.draft_length,
                draft_steps=options.draft_steps,
                temperature=options.temperature,
                seed=options.seed,
                stop_token_ids=options.stop_token_ids,
                draft_mode=options.draft_mode,
            )
        else:
            token_ids = self._generate_ar(token_ids, prompt_mask, options)
        return [row[:end] for row, end in zip(token_ids, ends)]

    def _generate_ar(self, token_ids, prompt_mask, options):
        sampler, use_cache = options.sampler, options.use_cache
        stop_token_ids = options.stop_token_ids
        if isinstance(sampler, str):
            # The seed is not part of the key: it is written into the sampler's state
            # below, so every seed shares one compiled function.
            sampler_key = ("named", sampler, options.temperature)
        else:
            sampler_key = ("instance", id(sampler))

        def build():
            if isinstance(sampler, str):
                kwargs = {k: v for k, v in options.sampler_kwargs.items() if k != "seed"}
                sampler_object = SAMPLERS[sampler](**kwargs)
            else:
                sampler_object = sampler
            if use_cache:
                def step(inputs):
                    return ar_decode(
                        self.call_with_cache,
                        self._build_cache,
                        inputs,
                        sampler_object,
                        stop_token_ids,
                        model=self,
                    )
            else:
                def step(inputs):
                    return ar_decode_uncached(
                        self.logits, inputs, sampler_object, stop_token_ids, model=self
                    )
            function = compile_decoding_function(step, self, sampler_object.variables)
            # Kept with the function so that `id(sampler)` cannot be reused.
            return sampler_object, function

        key = ("ar", use_cache, sampler_key, stop_token_ids)
        sampler_object, function = self._decoding_function(key, build)
        if options.seed is not None:
            # The state `SeedGenerator(seed)` starts from: the same tokens on every call.
            for variable in sampler_object.variables:
                variable.assign(np.array([options.seed, 0], dtype=variable.dtype))
        inputs = {"token_ids": token_ids, "prompt_mask": prompt_mask}
        return ops.convert_to_numpy(function(inputs))
