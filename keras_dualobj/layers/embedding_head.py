"""Token embedding whose reverse direction is the reference implementation's output head."""

import keras
from keras import ops

from keras_dualobj.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="keras_dualobj")
class EmbeddingWithOutputHead(keras.layers.ReversibleEmbedding):
    """A `ReversibleEmbedding` whose reverse call can add a projection and a bias.

    Forward: token ids to vectors, as `keras.layers.ReversibleEmbedding`. Reverse
    (`reverse=True`, hidden states to logits), the head of the paper's reference
    implementation when both options are on:
    `logits = gelu_tanh(hidden @ projection) @ vocabulary_matrix + bias`, where
    `projection` is a bias-free `hidden x hidden` matrix and `vocabulary_matrix` is
    the transposed embedding when `tie_weights=True` (only that matrix is shared),
    else its own `reverse_embeddings`. With both options off it is exactly a
    `ReversibleEmbedding`.

    Keeping the head inside the embedding layer lets every caller that maps hidden
    states to logits with `token_embedding(hidden, reverse=True)` (training, the KV
    cache path, scoring) use it unchanged.

    Args:
        input_dim: int. Vocabulary size.
        output_dim: int. Hidden width.
        head_projection: bool. Add the `hidden x hidden` projection and tanh-GELU.
        head_bias: bool. Add a bias of size `input_dim` to the logits.
        head_projection_initializer: initializer of the projection matrix.
        **kwargs: passed to `keras.layers.ReversibleEmbedding` (`tie_weights`,
            `embeddings_initializer`, ...).

    Example:
    >>> import numpy as np
    >>> layer = EmbeddingWithOutputHead(10, 4, head_projection=True, head_bias=True)
    >>> hidden = layer(np.array([[1, 2]]))
    >>> tuple(hidden.shape), tuple(layer(hidden, reverse=True).shape)
    ((1, 2, 4), (1, 2, 10))
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        head_projection=False,
        head_bias=False,
        head_projection_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(input_dim, output_dim, **kwargs)
        self.head_projection = head_projection
        self.head_bias = head_bias
        self.head_projection_initializer = keras.initializers.get(
            head_projection_initializer
        )

    def build(self, input_shape=None):
        super().build(input_shape)
        if self.head_projection:
            # A Dense layer (not a bare weight) so that Muon treats it as a matrix,
            # as the reference trains `classifier.projection` with Muon.
            self.projection_dense = keras.layers.Dense(
                self.output_dim,
                use_bias=False,
                kernel_initializer=clone_initializer(self.head_projection_initializer),
                dtype=self.dtype_policy,
                name="head_projection",
            )
            self.projection_dense.build((None, None, self.output_dim))
        if self.head_bias:
            self.output_bias = self.add_weight(
                shape=(self.input_dim,), initializer="zeros", name="output_bias"
            )

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        if self.head_projection:
            inputs = ops.gelu(self.projection_dense(inputs), approximate=True)
        logits = super().call(inputs, reverse=True)
        if self.head_bias:
            logits = logits + ops.cast(self.output_bias, logits.dtype)
        return logits

    @property
    def variable_serialization_spec(self):
        spec = super().variable_serialization_spec
        if self.head_bias:
            spec = {mode: list(names) + ["output_bias"] for mode, names in spec.items()}
        return spec

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "head_projection": self.head_projection,
                "head_bias": self.head_bias,
                "head_projection_initializer": keras.initializers.serialize(
                    self.head_projection_initializer
                ),
            }
        )
        return config
