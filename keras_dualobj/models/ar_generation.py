"""The KV-cache forward pass of `DualLM`: the call functions every cached decoder uses.

`call_with_cache` / `_build_cache` are the model's call functions for decoding (as in
keras-hub's `CausalLM`); the decoders (`keras_dualobj.decoders`) hand them to the loops
of `keras_dualobj.generation`.
"""

from keras import ops

from keras_dualobj.generation.md_block_cache import empty_cache
from keras_dualobj.layers.dual_attention import writes_cache_in_place


class ARGeneration:
    """Mixin: the KV-cache call functions of `DualLM`."""

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
        cache = empty_cache(self.backbone, ops.shape(token_ids)[0], ops.shape(token_ids)[1])
        _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
        return hidden_states, cache
