"""Attention masks and the layers of the dual Transformer."""

import numpy as np
from keras import ops

from keras_dualobj import layers


def test_dual_attention_mask_matches_definition():
    rng = np.random.default_rng(0)
    document_ids = np.sort(rng.integers(0, 3, size=(4, 10)), axis=1).astype("int32")
    prefix_lengths = np.array([0, 10, 4, 99], dtype="int32")
    mask = ops.convert_to_numpy(layers.dual_attention_mask(document_ids, prefix_lengths))
    for b in range(4):
        for i in range(10):
            for j in range(10):
                same = document_ids[b, i] == document_ids[b, j]
                expected = same and (j <= i or j < prefix_lengths[b])
                assert mask[b, i, j] == expected, (b, i, j)
    assert mask[:, np.arange(10), np.arange(10)].all()


def test_attention_layer_with_cache_matches_full_pass():
    layer = layers.DualAttention(num_heads=2, head_dim=8)
    hidden = np.random.default_rng(1).normal(size=(2, 6, 16)).astype("float32")
    causal = np.tril(np.ones((6, 6), bool))[None].repeat(2, 0)
    full = ops.convert_to_numpy(layer(hidden, attention_mask=causal))
    cache = ops.zeros((2, 2, 6, 2, 8))
    for index in range(6):
        step, cache = layer(
            hidden[:, index : index + 1],
            attention_mask=causal[:, index : index + 1],
            cache=cache,
            cache_update_index=index,
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(step)[:, 0], full[:, index], atol=1e-5
        )


def test_transformer_block_config_round_trip():
    block = layers.DualTransformerBlock(
        num_heads=2, head_dim=4, intermediate_dim=12, rope_max_wavelength=500
    )
    clone = layers.DualTransformerBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
