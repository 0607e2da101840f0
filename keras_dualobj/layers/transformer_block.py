"""One pre-norm Transformer block of the dual model."""

import keras

from keras_dualobj.layers.dual_attention import DualAttention
from keras_dualobj.layers.initializers import clone_initializer
from keras_dualobj.layers.rms_norm import rms_normalization
from keras_dualobj.layers.swiglu import SwiGLUFeedForward


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualTransformerBlock(keras.layers.Layer):
    """Pre-norm residual block: `x + attention(norm(x))`, then `x + swiglu(norm(x))`.

    RMSNorm, bias-free projections, rotary positions. The attention mask passed in
    decides causal / bidirectional / prefix-LM attention per row (see
    `dual_attention_mask`).

    Args:
        num_heads: int. Attention heads.
        head_dim: int. Width of each head.
        intermediate_dim: int. SwiGLU hidden width.
        rope_max_wavelength: float. RoPE base θ.
        layer_norm_epsilon: float. RMSNorm epsilon.
        dropout: float. Dropout after attention and feed-forward.
        kernel_initializer: initializer of the projection matrices.
        attention_norm_affine: bool. Whether the attention RMSNorm has a learned
            scale. Defaults to `True`.
        feed_forward_norm_affine: bool. Whether the feed-forward RMSNorm has a
            learned scale. Defaults to `True`.
        num_key_value_heads, query_key_value_bias, rope_scaling: grouped-query
            attention, q/k/v biases and RoPE scaling (see `DualAttention`).

    `call` takes the backbone's `rotary_tables` (computed once per forward pass);
    without them the attention computes its own.

    Example:
    >>> import numpy as np
    >>> block = DualTransformerBlock(num_heads=2, head_dim=4, intermediate_dim=16)
    >>> mask = np.ones((1, 3, 3), bool)
    >>> tuple(block(np.zeros((1, 3, 8), "float32"), attention_mask=mask).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        intermediate_dim,
        rope_max_wavelength=10000,
        layer_norm_epsilon=1e-7,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        attention_norm_affine=True,
        feed_forward_norm_affine=True,
        num_key_value_heads=None,
        query_key_value_bias=False,
        rope_scaling=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_key_value_heads = num_key_value_heads
        self.query_key_value_bias = query_key_value_bias
        self.rope_scaling = rope_scaling
        self.attention_norm_affine = attention_norm_affine
        self.feed_forward_norm_affine = feed_forward_norm_affine
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.rope_max_wavelength = rope_max_wavelength
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        self.attention_norm = rms_normalization(
            self.attention_norm_affine,
            self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="attention_norm",
        )
        self.attention_norm.build(inputs_shape)
        self.attention = DualAttention(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            rope_max_wavelength=self.rope_max_wavelength,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            num_key_value_heads=self.num_key_value_heads,
            query_key_value_bias=self.query_key_value_bias,
            rope_scaling=self.rope_scaling,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention.build(inputs_shape)
        self.feed_forward_norm = rms_normalization(
            self.feed_forward_norm_affine,
            self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="feed_forward_norm",
        )
        self.feed_forward_norm.build(inputs_shape)
        self.feed_forward = SwiGLUFeedForward(
            intermediate_dim=self.intermediate_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(
        self,
        hidden_states,
        attention_mask,
        cache=None,
        cache_update_index=None,
        training=None,
        rotary_tables=None,
    ):
        attended = self.attention(
            self.attention_norm(hidden_states),
            attention_mask=attention_mask,
            cache=cache,
            cache_update_index=cache_update_index,
            rotary_tables=rotary_tables,
        )
        if cache is not None:
            attended, cache = attended
        hidden_states = hidden_states + self.dropout_layer(attended, training=training)
        fed = self.feed_forward(self.feed_forward_norm(hidden_states))
        hidden_states = hidden_states + self.dropout_layer(fed, training=training)
        if cache is not None:
            return hidden_states, cache
        return hidden_states

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "intermediate_dim": self.intermediate_dim,
                "rope_max_wavelength": self.rope_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "attention_norm_affine": self.attention_norm_affine,
                "feed_forward_norm_affine": self.feed_forward_norm_affine,
                "num_key_value_heads": self.num_key_value_heads,
                "query_key_value_bias": self.query_key_value_bias,
                "rope_scaling": self.rope_scaling,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
