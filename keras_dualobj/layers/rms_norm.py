"""RMS normalisation with or without a learned scale."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dualobj")
class UnscaledRMSNormalization(keras.layers.Layer):
    """`x / sqrt(mean(x^2) + epsilon)` over the last axis, with no parameters.

    The reference implementation switches each RMSNorm's affine scale on or off
    (`*_pre_norm_affine` in its config); this is the "off" form. The "on" form is
    `keras.layers.RMSNormalization` (see `rms_normalization`).

    Args:
        epsilon: float. Added to the mean square before the square root.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> out = UnscaledRMSNormalization(epsilon=0.0)(np.array([[3.0, 4.0]], "float32"))
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(out)[0]]
    [0.8485, 1.1314]
    """

    def __init__(self, epsilon=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        mean_square = ops.mean(ops.square(inputs), axis=-1, keepdims=True)
        return inputs * ops.rsqrt(mean_square + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config


def rms_normalization(affine, epsilon, dtype=None, name=None):
    """An RMSNorm layer: Keras' scaled one if `affine`, else `UnscaledRMSNormalization`.

    Args:
        affine: bool. Whether the layer has a learned per-feature scale.
        epsilon: float. Added to the mean square.
        dtype: the layer dtype policy.
        name: the layer name.

    Example:
    >>> type(rms_normalization(True, 1e-7)).__name__, type(rms_normalization(False, 1e-7)).__name__
    ('RMSNormalization', 'UnscaledRMSNormalization')
    """
    if not isinstance(affine, bool):
        raise TypeError(f"`affine` must be True or False; received affine={affine!r}.")
    layer_class = keras.layers.RMSNormalization if affine else UnscaledRMSNormalization
    return layer_class(epsilon=epsilon, dtype=dtype, name=name)
