"""Multi-head self-attention with rotary positions, an explicit mask and a KV cache."""

import keras
from keras import ops

from keras_dualobj.layers.initializers import clone_initializer
from keras_dualobj.layers.rotary_embedding import RotaryEmbedding
from keras_dualobj.layers.rotary_embedding import apply_rotary


def writes_cache_in_place():
    """Whether KV caches are updated in place: on PyTorch, which runs eagerly.

    `ops.slice_update` and `ops.stack` copy the whole cache on every decoded token
    in eager PyTorch (three full copies per layer and token); decoding runs under
    `torch.no_grad()`, so writing the new keys and values into the cache tensor is
    safe and leaves the attention reading the same numbers. JAX and TensorFlow
    decode inside one compiled loop, where XLA already updates the buffer in place,
    so they keep the functional update.
    """
    return keras.backend.backend() == "torch"


def update_cache(cache, key, value, cache_update_index):
    """Writes `key`/`value` `[batch, n, kv_heads, head_dim]` at `cache_update_index`.

    Returns the full keys, values and the cache `[batch, 2, max_length, kv_heads,
    head_dim]`. In place on PyTorch (the returned cache is the argument), a new
    tensor elsewhere.

    Example:
    >>> import numpy as np
    >>> cache = np.zeros((1, 2, 4, 1, 2), "float32")
    >>> new = np.ones((1, 1, 1, 2), "float32")
    >>> keys, values, cache = update_cache(cache, new, 2 * new, 1)
    >>> keras.ops.convert_to_numpy(cache)[0, :, :, 0, 0].tolist()
    [[0.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]
    """
    if writes_cache_in_place():
        cache = ops.convert_to_tensor(cache)
        start = int(cache_update_index)
        stop = start + key.shape[1]
        cache[:, 0, start:stop] = ops.cast(key, cache.dtype)
        cache[:, 1, start:stop] = ops.cast(value, cache.dtype)
        return cache[:, 0], cache[:, 1], cache
    start = [0, cache_update_index, 0, 0]
    key = ops.slice_update(cache[:, 0, ...], start, key)
    value = ops.slice_update(cache[:, 1, ...], start, value)
    return key, value, ops.stack((key, value), axis=1)


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualAttention(keras.layers.Layer):
    """Multi-head self-attention whose mask decides causal or bidirectional.

    The layer itself has no notion of mode: the `[batch, query, key]` boolean mask from
    `dual_attention_mask` decides, per row, whether attention is causal, bidirectional
    or prefix-LM, and keeps packed documents apart. Rotary position embeddings (RoPE)
    are applied to queries and keys: from the `rotary_tables` the backbone computes
    once per forward pass, else from the layer's own (cached decoding). With
    `num_key_value_heads < num_heads` it is grouped-query attention (GQA, as Llama 3,
    Mistral and Qwen 2): query head `n` reads key/value head `n // (num_heads /
    num_key_value_heads)`. With a `cache` (`[batch, 2, max_length, num_key_value_heads,
    head_dim]`, keys then values) the layer writes this call's keys and values at
    `cache_update_index` and attends over the whole cache, as keras-hub's cached
    attention does for fast autoregressive decoding.

    Args:
        num_heads: int. Number of query heads.
        head_dim: int. Width of each head; must be even for RoPE.
        rope_max_wavelength: float. RoPE base θ.
        kernel_initializer: initializer of the projection matrices.
        num_key_value_heads: int dividing `num_heads`, or `None` (= `num_heads`).
        query_key_value_bias: bool. Biases on the query, key and value projections
            (Qwen 2). Defaults to `False`.
        rope_scaling: optional dict of RoPE scaling arguments (see
            `keras_dualobj.layers.rotary_embedding.rope_inverse_frequencies`).

    Example:
    >>> import numpy as np
    >>> layer = DualAttention(num_heads=4, head_dim=4, num_key_value_heads=2)
    >>> mask = np.tril(np.ones((1, 3, 3), bool))
    >>> tuple(layer(np.zeros((1, 3, 8), "float32"), attention_mask=mask).shape)
    (1, 3, 8)
    >>> tuple(layer.key_dense.kernel.shape)
    (8, 2, 4)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        rope_max_wavelength=10000,
        kernel_initializer="glorot_uniform",
        num_key_value_heads=None,
        query_key_value_bias=False,
        rope_scaling=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.rope_max_wavelength = rope_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.num_key_value_heads = num_key_value_heads
        self.query_key_value_bias = query_key_value_bias
        self.rope_scaling = rope_scaling

    @property
    def key_value_heads(self):
        """Key/value heads: `num_key_value_heads`, else `num_heads`."""
        return self.num_key_value_heads or self.num_heads

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]

        def projection(name, heads):
            layer = keras.layers.EinsumDense(
                "btd,dnh->btnh",
                output_shape=(None, heads, self.head_dim),
                bias_axes="nh" if self.query_key_value_bias else None,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build(inputs_shape)
            return layer

        self.query_dense = projection("query", self.num_heads)
        self.key_dense = projection("key", self.key_value_heads)
        self.value_dense = projection("value", self.key_value_heads)
        self.output_dense = keras.layers.EinsumDense(
            "btnh,nhd->btd",
            output_shape=(None, hidden_dim),
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="attention_output",
        )
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.rotary_embedding = RotaryEmbedding(
            head_dim=self.head_dim,
            max_wavelength=self.rope_max_wavelength,
            scaling=self.rope_scaling,
            dtype=self.dtype_policy,
        )
        self.built = True

    def call(
        self,
        hidden_states,
        attention_mask,
        cache=None,
        cache_update_index=None,
        rotary_tables=None,
    ):
        if cache is not None and cache_update_index is None:
            raise ValueError(
                "`cache_update_index` is required with a `cache`; "
                f"received cache_update_index={cache_update_index}."
            )
        if cache is not None and cache.shape[-2] != self.key_value_heads:
            raise ValueError(
                f"The cache holds {cache.shape[-2]} key/value heads; this layer has "
                f"{self.key_value_heads} (see `DualBackbone.cache_shape`)."
            )
        if rotary_tables is None:
            start_index = 0 if cache_update_index is None else cache_update_index
            rotary_tables = self.rotary_embedding(hidden_states, start_index=start_index)
        query = apply_rotary(self.query_dense(hidden_states), *rotary_tables)
        key = apply_rotary(self.key_dense(hidden_states), *rotary_tables)
        value = self.value_dense(hidden_states)

        if cache is not None:
            key, value, cache = update_cache(cache, key, value, cache_update_index)

        # `dot_product_attention` groups the query heads over fewer key/value heads, but
        # on TensorFlow (keras 3.15) only over two or more: one shared head is repeated.
        if self.key_value_heads == 1 < self.num_heads:
            key = ops.repeat(key, self.num_heads, axis=2)
            value = ops.repeat(value, self.num_heads, axis=2)
        attention = ops.dot_product_attention(
            query,
            key,
            value,
            mask=ops.expand_dims(ops.cast(attention_mask, "bool"), 1),
            scale=1.0 / self.head_dim**0.5,
        )
        output = self.output_dense(attention)
        if cache is not None:
            return output, cache
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "rope_max_wavelength": self.rope_max_wavelength,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "num_key_value_heads": self.num_key_value_heads,
                "query_key_value_bias": self.query_key_value_bias,
                "rope_scaling": self.rope_scaling,
            }
        )
        return config
