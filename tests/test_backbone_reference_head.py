"""DualBackbone options for the reference architecture: head, norms, initialisation."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualBackbone, DualLM
from keras_dualobj.layers.rms_norm import UnscaledRMSNormalization
from keras_dualobj.optimization.optimizers import muon_matrix_shapes

from model_checks import run_backbone_test

SMALL = dict(vocabulary_size=300, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=48)
REFERENCE = dict(head_projection=True, head_bias=True)


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def _randomize(backbone, seed=0):
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        variable.assign(rng.uniform(0.2, 1.0, variable.shape) * rng.choice([-1, 1], variable.shape)
                        / math.sqrt(variable.shape[0]))


def _inputs(length=6):
    return {
        "token_ids": np.arange(16, 16 + 2 * length, dtype="int32").reshape(2, length),
        "document_ids": np.zeros((2, length), "int32"),
        "prefix_lengths": np.array([0, length], "int32"),
    }


def test_defaults_keep_the_single_linear_head_and_its_weight_names():
    backbone = DualBackbone(**SMALL)
    assert type(backbone.token_embedding) is keras.layers.ReversibleEmbedding
    names = {v.path for v in backbone.weights}
    assert {"token_embedding/embeddings", "token_embedding/reverse_embeddings",
            "final_norm/scale", "transformer_layer_0/attention_norm/scale"} <= names
    assert not any("head_projection" in n or "output_bias" in n for n in names)
    assert backbone.get_config()["initialization"] == "normal"


@pytest.mark.parametrize("tied", [False, True])
def test_reference_head_is_projection_gelu_then_biased_vocabulary_projection(tied):
    backbone = DualBackbone(**SMALL, **REFERENCE, tie_word_embeddings=tied)
    _randomize(backbone)
    head = backbone.token_embedding
    hidden = np.random.default_rng(1).normal(size=(2, 5, 32)).astype("float32")
    projected = hidden @ _numpy(head.projection_dense.kernel)
    gelu = 0.5 * projected * (1 + np.tanh(math.sqrt(2 / math.pi) * (projected + 0.044715 * projected**3)))
    vocabulary = _numpy(head.embeddings).T if tied else _numpy(head.reverse_embeddings)
    expected = gelu @ vocabulary + _numpy(head.output_bias)
    actual = _numpy(head(hidden, reverse=True))
    assert np.max(np.abs(actual - expected)) < 1e-4 * np.max(np.abs(expected))
    # Tying shares only the vocabulary matrix: projection and bias stay separate.
    vocabulary_matrices = 1 if tied else 2
    assert backbone.count_params() == (
        vocabulary_matrices * 300 * 32 + 32 * 32 + 300 + 2 * (4 * 32 * 32 + 3 * 32 * 48 + 2 * 32) + 32
    )


def test_norms_without_affine_scale_have_no_parameters_and_normalise():
    backbone = DualBackbone(**SMALL, attention_norm_affine=False, feed_forward_norm_affine=True,
                            head_norm_affine=False)
    names = {v.path for v in backbone.weights}
    assert not any("attention_norm" in n or "final_norm" in n for n in names)
    assert "transformer_layer_1/feed_forward_norm/scale" in names
    assert isinstance(backbone.final_norm, UnscaledRMSNormalization)
    x = np.random.default_rng(2).normal(size=(3, 32)).astype("float32")
    expected = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-7)
    assert np.allclose(_numpy(backbone.final_norm(x)), expected, rtol=1e-5, atol=1e-6)
    assert backbone.count_params() == DualBackbone(**SMALL).count_params() - 3 * 32


def test_reference_initialisation_statistics():
    hidden, vocabulary = 64, 512
    backbone = DualBackbone(vocabulary_size=vocabulary, num_layers=2, num_heads=4, hidden_dim=hidden,
                            intermediate_dim=256, **REFERENCE, initialization="reference")
    truncation = 0.8796  # std of a normal truncated at two standard deviations
    blocks = backbone.transformer_layers
    for block in blocks:
        assert not np.any(_numpy(block.attention.output_dense.kernel))
        assert not np.any(_numpy(block.feed_forward.down_dense.kernel))
        assert np.all(_numpy(block.attention_norm.scale) == 1.0)
    assert not np.any(_numpy(backbone.token_embedding.output_bias))

    def check(variable, std):
        values = _numpy(variable)
        assert np.max(np.abs(values)) <= 2 * std * (1 + 1e-6)
        assert abs(values.std() / (std * truncation) - 1) < 0.06, (variable.path, values.std(), std)

    matrix_std = math.sqrt(2 / (5 * hidden))
    check(backbone.token_embedding.embeddings, math.sqrt(2 / (hidden + vocabulary)))
    check(backbone.token_embedding.reverse_embeddings, math.sqrt(2 / (hidden + vocabulary)))
    check(backbone.token_embedding.projection_dense.kernel, matrix_std)
    for i, block in enumerate(blocks):
        check(block.attention.query_dense.kernel, matrix_std)
        check(block.attention.value_dense.kernel, matrix_std)
        for dense in (block.feed_forward.gate_dense, block.feed_forward.up_dense):
            check(dense.kernel, matrix_std * math.sqrt(1 / (2 * (i + 1))))


def test_reference_backbone_saves_loads_decodes_and_trains_its_head_with_muon(tmp_path):
    backbone = DualBackbone(**SMALL, **REFERENCE, attention_norm_affine=False,
                            initialization="reference")
    _randomize(backbone, seed=3)
    inputs = _inputs()
    run_backbone_test(backbone, inputs, tmp_path)
    model = DualLM(backbone)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    before = _numpy(model.logits(inputs["token_ids"], inputs["document_ids"], inputs["prefix_lengths"]))
    after = _numpy(loaded.logits(inputs["token_ids"], inputs["document_ids"], inputs["prefix_lengths"]))
    assert np.array_equal(before, after)
    assert loaded.backbone.get_config()["head_projection"] is True
    # The KV-cache path maps hidden states to logits through the same head.
    _, cache = loaded._build_cache(np.zeros((1, 6), "int32"))
    _, _, cache = loaded.call_with_cache(inputs["token_ids"][:1, :5], cache, 0)
    cached, _, _ = loaded.call_with_cache(inputs["token_ids"][:1, 5:6], cache, 5)
    assert np.allclose(_numpy(cached)[0, 0], before[0, 5], rtol=1e-4, atol=1e-4)
    # As in the reference, Muon trains the head projection (a matrix), AdamW the rest.
    assert "token_embedding/head_projection/kernel" in muon_matrix_shapes(loaded.backbone)


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match="head_bias=1"):
        DualBackbone(**SMALL, head_bias=1)
    with pytest.raises(TypeError, match="head_norm_affine='no'"):
        DualBackbone(**SMALL, head_norm_affine="no")
    with pytest.raises(ValueError, match=r"\['normal', 'reference'\].*initialization='xavier'"):
        DualBackbone(**SMALL, initialization="xavier")
