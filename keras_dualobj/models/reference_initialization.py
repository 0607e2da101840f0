"""The reference implementation's weight initialisation, applied to a `DualBackbone`."""

import math

import keras
from keras import ops


def reference_initialization_stddevs(hidden_dim, vocabulary_size, layer_index):
    """Standard deviations of the reference scheme, `{role: stddev}`.

    The reference (ltgoslo/dual-language-models) draws every matrix from a normal
    truncated at two standard deviations. Embedding and vocabulary matrix:
    `sqrt(2 / (hidden + vocabulary))`. Queries, keys, values, the SwiGLU gate and
    value halves and the head projection: `sqrt(2 / (5 * hidden))` (the reference
    overrides its layers' default `sqrt(2 / (fan_in + fan_out))` with this
    constant). The SwiGLU matrices of layer `i` (0-based) are then scaled by
    `sqrt(1 / (2 (i + 1)))`. The attention output and the feed-forward down
    projection start at zero, as does the vocabulary bias; RMSNorm scales at one.

    Example:
    >>> stddevs = reference_initialization_stddevs(1024, 51200, layer_index=1)
    >>> round(stddevs["embedding"], 6), round(stddevs["query"], 6), stddevs["attention_output"]
    (0.006188, 0.019764, 0.0)
    >>> round(stddevs["feed_forward_up"] / stddevs["query"], 4)  # sqrt(1 / 4)
    0.5
    """
    vocabulary_std = math.sqrt(2.0 / (hidden_dim + vocabulary_size))
    matrix_std = math.sqrt(2.0 / (5 * hidden_dim))
    depth_scale = math.sqrt(1.0 / (2.0 * (layer_index + 1)))
    return {
        "embedding": vocabulary_std,
        "vocabulary": vocabulary_std,
        "head_projection": matrix_std,
        "query": matrix_std,
        "key": matrix_std,
        "value": matrix_std,
        "attention_output": 0.0,
        "feed_forward_gate": matrix_std * depth_scale,
        "feed_forward_up": matrix_std * depth_scale,
        "feed_forward_down": 0.0,
    }


def _draw(variable, stddev, seed_generator):
    if stddev == 0.0:
        variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))
        return
    # Inverse-CDF sampling of a normal truncated at the reference's bounds
    # (a = -2 std, b = 2 std). keras.random.truncated_normal is not bounded
    # exactly on every backend (values beyond 2.6 std under PyTorch).
    bound = 0.5 * (1.0 + math.erf(-2.0 / math.sqrt(2.0)))
    uniform = keras.random.uniform(
        variable.shape, minval=bound, maxval=1.0 - bound, dtype="float32", seed=seed_generator
    )
    values = math.sqrt(2.0) * stddev * ops.erfinv(2.0 * uniform - 1.0)
    variable.assign(ops.cast(ops.clip(values, -2.0 * stddev, 2.0 * stddev), variable.dtype))


def apply_reference_initialization(backbone, seed=None):
    """Re-draws every weight of a built `DualBackbone` with the reference scheme.

    See `reference_initialization_stddevs` for the numbers. Norm scales are set to
    one and the vocabulary bias to zero. `DualBackbone(initialization="reference")`
    calls this in its constructor.

    Args:
        backbone: a `DualBackbone`.
        seed: int or None, seed of the draws.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_dualobj.models import DualBackbone
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
    ...                         hidden_dim=16, intermediate_dim=32)
    >>> apply_reference_initialization(backbone, seed=0)
    >>> block = backbone.transformer_layers[1]
    >>> float(np.abs(ops.convert_to_numpy(block.attention.output_dense.kernel)).max())
    0.0
    """
    seed_generator = keras.random.SeedGenerator(seed)
    hidden, vocabulary = backbone.hidden_dim, backbone.vocabulary_size
    stddevs = reference_initialization_stddevs(hidden, vocabulary, 0)
    embedding = backbone.token_embedding
    _draw(embedding.embeddings, stddevs["embedding"], seed_generator)
    if not embedding.tie_weights:
        _draw(embedding.reverse_embeddings, stddevs["vocabulary"], seed_generator)
    if getattr(embedding, "head_projection", False):
        _draw(embedding.projection_dense.kernel, stddevs["head_projection"], seed_generator)
    if getattr(embedding, "head_bias", False):
        _draw(embedding.output_bias, 0.0, seed_generator)
    for index, block in enumerate(backbone.transformer_layers):
        stddevs = reference_initialization_stddevs(hidden, vocabulary, index)
        attention, feed_forward = block.attention, block.feed_forward
        matrices = {
            "query": attention.query_dense.kernel,
            "key": attention.key_dense.kernel,
            "value": attention.value_dense.kernel,
            "attention_output": attention.output_dense.kernel,
            "feed_forward_gate": feed_forward.gate_dense.kernel,
            "feed_forward_up": feed_forward.up_dense.kernel,
            "feed_forward_down": feed_forward.down_dense.kernel,
        }
        for role, variable in matrices.items():
            _draw(variable, stddevs[role], seed_generator)
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RMSNormalization):
            layer.scale.assign(ops.ones(layer.scale.shape, dtype=layer.scale.dtype))
