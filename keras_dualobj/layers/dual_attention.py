"""Multi-head self-attention with rotary positions, an explicit mask and a KV cache."""

import keras
from keras import ops
from keras_hub.layers import RotaryEmbedding

from keras_dualobj.layers.initializers import clone_initializer


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
    """Writes `key`/`value` `[batch, n, heads, head_dim]` at `cache_update_index`.

    Returns the full keys, values and the cache `[batch, 2, max_length, heads,
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
    """Bias-free multi-head self-attention whose mask decides causal or bidirectional.

    The layer itself has no notion of mode: the `[batch, query, key]` boolean mask from
    `dual_attention_mask` decides, per row, whether attention is causal, bidirectional
    or prefix-LM, and keeps packed documents apart. Rotary position embeddings (RoPE)
    are applied to queries and keys. With a `cache` (`[batch, 2, max_length, heads,
    head_dim]`, keys then values) the layer writes this call's keys and values at
    `cache_update_index` and attends over the whole cache, as keras-hub's cached
    attention does for fast autoregressive decoding.

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Width of each head; must be even for RoPE.
        rope_max_wavelength: float. RoPE base θ.
        kernel_initializer: initializer of the projection matrices.

    Example:
    >>> import numpy as np
    >>> layer = DualAttention(num_heads=2, head_dim=4)
    >>> mask = np.tril(np.ones((1, 3, 3), bool))
    >>> tuple(layer(np.zeros((1, 3, 8), "float32"), attention_mask=mask).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        rope_max_wavelength=10000,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.rope_max_wavelength = rope_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        projection_shape = (None, self.num_heads, self.head_dim)

        def projection(name):
            layer = keras.layers.EinsumDense(
                "btd,dnh->btnh",
                output_shape=projection_shape,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build(inputs_shape)
            return layer

        self.query_dense = projection("query")
        self.key_dense = projection("key")
        self.value_dense = projection("value")
        self.output_dense = keras.layers.EinsumDense(
            "btnh,nhd->btd",
            output_shape=(None, hidden_dim),
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="attention_output",
        )
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.rotary_embedding = RotaryEmbedding(
            max_wavelength=self.rope_max_wavelength,
            dtype=self.dtype_policy,
        )
        self.built = True

    def call(
        self,
        hidden_states,
        attention_mask,
        cache=None,
        cache_update_index=None,
    ):
        start_index = 0 if cache_update_index is None else cache_update_index
        query = self.rotary_embedding(
            self.query_dense(hidden_states), start_index=start_index
        )
        key = self.rotary_embedding(
            self.key_dense(hidden_states), start_index=start_index
        )
        value = self.value_dense(hidden_states)

        if cache is not None:
            if cache_update_index is None:
                raise ValueError(
                    "`cache_update_index` is required with a `cache`; "
                    f"received cache_update_index={cache_update_index}."
                )
            key, value, cache = update_cache(cache, key, value, cache_update_index)

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
            }
        )
        return config
