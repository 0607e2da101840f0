"""Rotary position embeddings (RoPE): the frequencies, the cos/sin tables, their use.

The tables depend only on the positions, so the backbone computes them once per
forward pass (`RotaryEmbedding`) and every attention layer applies them to its
queries and keys (`apply_rotary`). The frequencies are a constant of the
architecture, fixed in NumPy when the layer is built. The layout is keras-hub's
`RotaryEmbedding` (the feature axis split in two halves, `[-x2, x1]` rotated), and
so are the scalings: linear (`scaling_factor`, Qwen's `rope_scaling_factor`) and
Llama 3.1's frequency-dependent one (`keras_hub`'s `LlamaRotaryEmbedding`).
"""

import math

import keras
import numpy as np
from keras import ops

# Llama 3.1's scaling: all four arguments or none (keras-hub's rule).
LLAMA3_SCALING_KEYS = (
    "frequency_adjustment_factor",
    "low_freq_factor",
    "high_freq_factor",
    "pretraining_sequence_length",
)


def rope_inverse_frequencies(head_dim, max_wavelength=10000, scaling_factor=1.0,
                             frequency_adjustment_factor=None, low_freq_factor=None,
                             high_freq_factor=None, pretraining_sequence_length=None):
    """The `head_dim / 2` inverse frequencies of RoPE, float32 NumPy.

    `1 / max_wavelength^(2i / head_dim)`, divided by `scaling_factor` (linear
    scaling), then, with the Llama 3.1 arguments, frequencies whose wavelength
    exceeds `pretraining_sequence_length / low_freq_factor` are divided by
    `frequency_adjustment_factor`, those below `.../ high_freq_factor` kept, and
    those between interpolated smoothly (Meta's `apply_scaling`).

    Example:
    >>> rope_inverse_frequencies(4, max_wavelength=100).tolist()
    [1.0, 0.10000000149011612]
    >>> scaled = rope_inverse_frequencies(8, 500000, frequency_adjustment_factor=8.0,
    ...     low_freq_factor=1.0, high_freq_factor=4.0, pretraining_sequence_length=64)
    >>> [round(float(v), 6) for v in rope_inverse_frequencies(8, 500000)]
    [1.0, 0.037606, 0.001414, 5.3e-05]
    >>> [round(float(v), 6) for v in scaled]  # wavelengths beyond 64 tokens / 8
    [1.0, 0.004701, 0.000177, 7e-06]
    """
    llama3 = (frequency_adjustment_factor, low_freq_factor, high_freq_factor,
              pretraining_sequence_length)
    if any(value is None for value in llama3) and not all(value is None for value in llama3):
        raise ValueError(
            f"Llama 3 RoPE scaling needs all of {list(LLAMA3_SCALING_KEYS)} or none; "
            f"received {dict(zip(LLAMA3_SCALING_KEYS, llama3))}."
        )
    exponents = np.arange(0, head_dim, 2, dtype="float64") / head_dim
    inverse = 1.0 / (float(max_wavelength) ** exponents) / float(scaling_factor)
    if low_freq_factor is not None:
        wavelength = 2 * math.pi / inverse
        low_wavelength = pretraining_sequence_length / low_freq_factor
        high_wavelength = pretraining_sequence_length / high_freq_factor
        adjusted = inverse / frequency_adjustment_factor
        smooth = (pretraining_sequence_length / wavelength - low_freq_factor) / (
            high_freq_factor - low_freq_factor
        )
        smoothed = (1 - smooth) * adjusted + smooth * inverse
        inverse = np.where(wavelength > low_wavelength, adjusted, inverse)
        medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
        inverse = np.where(medium, smoothed, inverse)
    return inverse.astype("float32")


def rotary_tables(inverse_frequencies, length, start_index=0, dtype="float32"):
    """`(cos, sin)`, each `[1, length, 1, head_dim]`, for positions `start_index ...`.

    Example:
    >>> cos, sin = rotary_tables(np.array([1.0, 0.5], "float32"), 3)
    >>> tuple(cos.shape), [round(float(v), 4) for v in ops.convert_to_numpy(sin)[0, 1, 0]]
    ((1, 3, 1, 4), [0.8415, 0.4794, 0.8415, 0.4794])
    """
    positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
    angles = positions[:, None] * ops.convert_to_tensor(inverse_frequencies)[None, :]
    angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]
    return ops.cast(ops.cos(angles), dtype), ops.cast(ops.sin(angles), dtype)


def apply_rotary(inputs, cos, sin):
    """Rotates `inputs` `[batch, length, heads, head_dim]` by the tables of `rotary_tables`.

    Example:
    >>> cos, sin = rotary_tables(np.array([1.0], "float32"), 2)
    >>> x = ops.convert_to_tensor(np.array([[[[1.0, 0.0]], [[1.0, 0.0]]]], "float32"))
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(apply_rotary(x, cos, sin))[0, 1, 0]]
    [0.5403, 0.8415]
    """
    first, second = ops.split(inputs, 2, axis=-1)
    return inputs * cos + ops.concatenate([-second, first], axis=-1) * sin


@keras.saving.register_keras_serializable(package="keras_dualobj")
class RotaryEmbedding(keras.layers.Layer):
    """The RoPE tables of a sequence: `(cos, sin)`, each `[1, length, 1, head_dim]`.

    Called on token ids `[batch, length]` (only the length is read), optionally
    from `start_index` (cached decoding). The attention layers apply the tables
    with `apply_rotary`.

    Args:
        head_dim: int. Width of each attention head (even).
        max_wavelength: float. RoPE base θ.
        scaling: optional dict of `rope_inverse_frequencies`' scaling arguments
            (`scaling_factor`, and Llama 3.1's four), `None` for none.

    Example:
    >>> layer = RotaryEmbedding(head_dim=8, max_wavelength=10000)
    >>> cos, sin = layer(np.zeros((2, 5), "int32"))
    >>> tuple(cos.shape), tuple(sin.shape)
    ((1, 5, 1, 8), (1, 5, 1, 8))
    """

    def __init__(self, head_dim, max_wavelength=10000, scaling=None, **kwargs):
        super().__init__(**kwargs)
        self.head_dim = head_dim
        self.max_wavelength = max_wavelength
        self.scaling = dict(scaling or {})
        self.inverse_frequencies = rope_inverse_frequencies(
            head_dim, max_wavelength, **self.scaling
        )
        self.built = True

    def call(self, token_ids, start_index=0):
        return rotary_tables(
            self.inverse_frequencies, ops.shape(token_ids)[1], start_index, self.compute_dtype
        )

    def compute_output_spec(self, token_ids, start_index=0):
        shape = (1, token_ids.shape[1], 1, self.head_dim)
        spec = keras.KerasTensor(shape, dtype=self.compute_dtype)
        return spec, keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"head_dim": self.head_dim, "max_wavelength": self.max_wavelength,
             "scaling": self.scaling}
        )
        return config
