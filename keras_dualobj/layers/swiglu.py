"""The SwiGLU feed-forward network (Shazeer, 2020)."""

import keras
from keras import ops

from keras_dualobj.layers.initializers import clone_initializer


def silu(x):
    """`x * sigmoid(x)`, the same function as `keras.ops.silu` on every backend.

    On TensorFlow `keras.ops.silu` is `tf.nn.silu`, which wraps its gradient in
    `tf.custom_gradient`. Traced in a graph (every `fit()` step function), that
    registers a gradient function in TensorFlow's process-wide gradient registry
    that is never removed and holds the whole traced step graph: about 35 MB per
    compiled model for the tiny preset, so a study of many cells in one process
    grows without bound. Writing the product out lets autodiff derive the same
    gradient without the registry. JAX's `silu` is this product already, and
    PyTorch keeps its fused `silu` kernel (nothing leaks there).

    Example:
    >>> import numpy as np
    >>> x = np.array([-2.0, 0.0, 3.0], "float32")
    >>> bool(np.allclose(silu(x), x / (1 + np.exp(-x)), atol=1e-6))
    True
    """
    if keras.backend.backend() == "tensorflow":
        return x * ops.sigmoid(x)
    return ops.silu(x)


@keras.saving.register_keras_serializable(package="keras_dualobj")
class SwiGLUFeedForward(keras.layers.Layer):
    """`down(silu(gate(x)) * up(x))`, three bias-free projections.

    Args:
        intermediate_dim: int. Width of the gated hidden layer.
        kernel_initializer: initializer of the three matrices.

    Example:
    >>> import numpy as np
    >>> tuple(SwiGLUFeedForward(intermediate_dim=16)(np.zeros((1, 3, 8), "float32")).shape)
    (1, 3, 8)
    """

    def __init__(self, intermediate_dim, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]

        def dense(units, name, input_dim):
            layer = keras.layers.Dense(
                units,
                use_bias=False,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build((None, None, input_dim))
            return layer

        self.gate_dense = dense(self.intermediate_dim, "gate", hidden_dim)
        self.up_dense = dense(self.intermediate_dim, "up", hidden_dim)
        self.down_dense = dense(hidden_dim, "down", self.intermediate_dim)
        self.built = True

    def call(self, inputs):
        hidden = silu(self.gate_dense(inputs)) * self.up_dense(inputs)
        return self.down_dense(hidden)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
