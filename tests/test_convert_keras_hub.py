"""keras-hub Llama 3 / Qwen 2 models into a `DualLM` and back, and the options that hold them.

The keras-hub models are tiny and random (`keras_dualobj.convert.keras_hub_tiny`), with
weights drawn large enough that a wrong mapping, head grouping or RoPE scaling moves the
logits far beyond the 1e-4 relative tolerance (the RoPE test shows it does). Real presets
need a download: they take `from_keras_hub`'s preset path, tested here on local folders
written by keras-hub's `save_to_preset`.
"""

import json
import re

import keras
import numpy as np
import pytest

from keras_dualobj.convert import causal_logits_error
from keras_dualobj.convert import from_keras_hub
from keras_dualobj.convert import to_keras_hub
from keras_dualobj.convert.keras_hub_tiny import tiny_keras_hub_model
from keras_dualobj.layers.rotary_embedding import rope_inverse_frequencies
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM

TOLERANCE = 1e-4


def randomized(task, seed=0):
    """`task` with every weight random (norm scales around 1, biases non-zero)."""
    rng = np.random.default_rng(seed)
    for variable in task.backbone.weights:
        values = rng.normal(scale=0.3, size=variable.shape)
        variable.assign((values + ("scale" in variable.path)).astype("float32"))
    return task


def assert_close(actual, expected, atol):
    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual),
                               keras.ops.convert_to_numpy(expected), atol=atol)


def token_ids(length=40, seed=1):
    return np.random.default_rng(seed).integers(0, 260, (2, length)).astype("int32")


@pytest.mark.parametrize(
    "family, tied", [("llama3", False), ("llama3", True), ("qwen", True)]
)
def test_converts_both_ways_with_the_same_causal_logits(family, tied):
    task = randomized(tiny_keras_hub_model(family, hidden_dim=32, intermediate_dim=48,
                                           tie_word_embeddings=tied))
    model = from_keras_hub(task)
    assert model.backbone.num_key_value_heads == 2
    assert model.backbone.tie_word_embeddings is tied
    assert model.backbone.query_key_value_bias is (family == "qwen")
    assert causal_logits_error(model, task, token_ids()) < TOLERANCE
    back = to_keras_hub(model)
    assert type(back) is type(task)
    for original, returned in zip(task.backbone.weights, back.backbone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(original),
                                      keras.ops.convert_to_numpy(returned))
    assert causal_logits_error(model, back, token_ids()) < TOLERANCE


def test_llama3_rope_scaling_is_what_matches():
    task = randomized(tiny_keras_hub_model("llama3", hidden_dim=32, intermediate_dim=48))
    model = from_keras_hub(task)
    config = model.backbone.get_config()
    config["rope_frequency_adjustment_factor"] = None
    for name in ("rope_low_freq_factor", "rope_high_freq_factor",
                 "rope_pretraining_sequence_length"):
        config[name] = None
    unscaled = DualLM(DualBackbone.from_config(config))
    unscaled.backbone.set_weights(model.backbone.get_weights())
    # Beyond the 16-token "pretraining length" the scaling changes the logits.
    assert causal_logits_error(unscaled, task, token_ids()) > 100 * TOLERANCE
    assert causal_logits_error(model, task, token_ids()) < TOLERANCE


def test_inverse_frequencies_match_keras_hub():
    from keras_hub.layers import RotaryEmbedding
    from keras_hub.src.models.llama.llama_rotary_embedding import LlamaRotaryEmbedding

    llama3 = dict(frequency_adjustment_factor=8.0, low_freq_factor=1.0,
                  high_freq_factor=4.0, pretraining_sequence_length=8192)
    expected = LlamaRotaryEmbedding(max_wavelength=500000, **llama3)._get_inverse_freq(64)
    actual = rope_inverse_frequencies(64, 500000, **llama3)
    np.testing.assert_allclose(actual, keras.ops.convert_to_numpy(expected), rtol=1e-6)
    linear = RotaryEmbedding(max_wavelength=10000, scaling_factor=4.0)._get_inverse_freq(16)
    np.testing.assert_allclose(rope_inverse_frequencies(16, 10000, scaling_factor=4.0),
                               keras.ops.convert_to_numpy(linear), rtol=1e-6)


def grouped_and_full_models(key_value_heads=2):
    """A GQA `DualLM` (4 query heads over `key_value_heads`) and its multi-head twin."""
    keras.utils.set_random_seed(0)
    arguments = dict(vocabulary_size=64, num_layers=1, num_heads=4, hidden_dim=32,
                     intermediate_dim=48, query_key_value_bias=True)
    grouped = DualBackbone(num_key_value_heads=key_value_heads, **arguments)
    full = DualBackbone(**arguments)
    for source, target in zip(grouped.weights, full.weights):
        values = keras.ops.convert_to_numpy(source)
        if "/key/" in source.path or "/value/" in source.path:
            # With 2 key/value heads, query heads 0 and 1 share head 0.
            values = np.repeat(values, 4 // key_value_heads, axis=-2)
        target.assign(values)
    return DualLM(grouped), DualLM(full)


@pytest.mark.parametrize("key_value_heads", [2, 1])  # 1: multi-query attention
def test_grouped_query_attention_in_every_mode(key_value_heads):
    grouped, full = grouped_and_full_models(key_value_heads)
    inputs = {"token_ids": token_ids(12) % 64, "document_ids": np.zeros((2, 12), "int32"),
              "prefix_lengths": np.array([5, 9], "int32")}
    for mode in ("ar", "md", "prefix"):
        mode_inputs = inputs if mode == "prefix" else {**inputs, "prefix_lengths": None}
        mode_inputs = {name: value for name, value in mode_inputs.items() if value is not None}
        assert_close(grouped(mode_inputs, mode=mode), full(mode_inputs, mode=mode), 1e-5)
    assert tuple(grouped.backbone.transformer_layers[0].attention.key_dense.kernel.shape) == (
        32, key_value_heads, 8)


def test_grouped_query_kv_cache_and_prefix_cache():
    grouped, full = grouped_and_full_models()
    assert grouped.backbone.cache_shape(2, 8) == (2, 1, 2, 8, 2, 8)
    # The MD prefix cache through `generate`; the AR cache directly (same code path).
    from keras_dualobj.decoders import MDDecoder

    options = dict(max_new_tokens=2,
                   decoder=MDDecoder(num_steps=2, block_length=1, prefix_cache=True, seed=0))
    prompts = [[1, 20, 21], [1, 30]]
    assert [row.tolist() for row in grouped.generate(prompts, **options)] == [
        row.tolist() for row in full.generate(prompts, **options)
    ]
    tokens = token_ids(8) % 64
    _, cache = grouped._build_cache(tokens)
    assert tuple(cache.shape) == (2, 1, 2, 8, 2, 8)
    _, _, full_cache = full.call_with_cache(tokens, keras.ops.zeros(full.backbone.cache_shape(2, 8)), 0)
    cached, _, _ = grouped.call_with_cache(tokens[:, 7:8], cache, 7)
    full_cached, _, _ = full.call_with_cache(tokens[:, 7:8], full_cache, 7)
    assert_close(cached, full_cached, 1e-5)
    assert_close(cached[:, 0], grouped(tokens)[:, 7], 1e-5)


def test_preset_folders_load_with_their_tokenizer_and_train(tmp_path):
    task = randomized(tiny_keras_hub_model("llama3", num_layers=1, hidden_dim=32,
                                           intermediate_dim=48, tie_word_embeddings=True))
    task.save_to_preset(tmp_path / "task")  # tied: keras-hub reloads it untied
    model = from_keras_hub(str(tmp_path / "task"), sequence_length=32)
    assert causal_logits_error(model, task, token_ids()) < TOLERANCE
    tokenizer = model.tokenizer
    assert type(tokenizer).__name__ == "Llama3Tokenizer"
    assert tokenizer.id_to_token(model.bos_token_id) == "<|begin_of_text|>"
    assert tokenizer.id_to_token(model.mask_token_id) == "<|reserved_special_token_0|>"
    assert model.preprocessor.sequence_length == 32
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(["the cat sat on the mat"] * 4, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    task.backbone.save_to_preset(tmp_path / "backbone")
    bare = from_keras_hub(str(tmp_path / "backbone"))
    assert bare.tokenizer is None


def test_to_keras_hub_task_exports_to_transformers(tmp_path):
    model = from_keras_hub(tiny_keras_hub_model("llama3", num_layers=1, hidden_dim=32,
                                                intermediate_dim=48))
    task = to_keras_hub(model)
    assert type(task).__name__ == "Llama3CausalLM"
    assert task.generate("the cat", max_length=12).startswith("the cat")
    task.export_to_transformers(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["num_key_value_heads"], config["num_attention_heads"]) == (2, 4)
    assert config["rope_scaling"]["original_max_position_embeddings"] == 16
    assert (tmp_path / "model.safetensors").is_file()


def test_bad_conversions_say_what_is_accepted():
    import keras_hub

    mistral = keras_hub.models.MistralBackbone(
        vocabulary_size=64, num_layers=1, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=16, intermediate_dim=32)
    with pytest.raises(ValueError, match="MistralBackbone.*Llama3Backbone"):
        from_keras_hub(mistral)
    with pytest.raises(ValueError, match="DualBackbone; supported are"):
        from_keras_hub(DualBackbone(64, 1, 2, 16, 32))
    with pytest.raises(TypeError, match="keras-hub backbone.*received int"):
        from_keras_hub(3)
    with pytest.raises(ValueError, match=r"\['head_projection'\]"):
        to_keras_hub(DualBackbone(64, 1, 2, 16, 32, head_projection=True))
    with pytest.raises(ValueError, match="Unknown family 'gemma'"):
        to_keras_hub(DualBackbone(64, 1, 2, 16, 32), family="gemma")
    with pytest.raises(ValueError, match="num_key_value_heads=3, num_heads=4"):
        DualBackbone(64, 1, 4, 16, 32, num_key_value_heads=3)
    with pytest.raises(ValueError, match="all of"):
        DualBackbone(64, 1, 2, 16, 32, rope_low_freq_factor=1.0)
    with pytest.raises(ValueError, match="rope_low_freq_factor"):
        DualBackbone(64, 1, 2, 16, 32, rope_frequency_adjustment_factor=8.0,
                     rope_low_freq_factor=4.0, rope_high_freq_factor=1.0,
                     rope_pretraining_sequence_length=16)


def test_llama_family_options_survive_saving(tmp_path):
    backbone = DualBackbone(64, 1, 4, 16, 32, num_key_value_heads=2, query_key_value_bias=True,
                            rope_scaling_factor=2.0)
    model = DualLM(backbone)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    config = restored.backbone.get_config()
    assert (config["num_key_value_heads"], config["query_key_value_bias"],
            config["rope_scaling_factor"]) == (2, True, 2.0)
    tokens = np.array([[1, 5, 6, 7]], "int32")
    assert_close(restored(tokens), model(tokens), 1e-6)


@pytest.mark.end_to_end("torch")
def test_cli_converts_trains_with_init_and_exports(tmp_path, capsys):
    from keras_dualobj.cli import main
    from keras_dualobj.models.saving import load_model

    task = randomized(tiny_keras_hub_model("llama3"))
    task.save_to_preset(tmp_path / "hub")
    assert main(["convert", "--from-keras-hub", str(tmp_path / "hub"),
                 "--output", str(tmp_path / "model.keras"), "--sequence-length", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"] == "Llama3Tokenizer"
    converted = load_model(tmp_path / "model.keras")
    assert causal_logits_error(converted, task, token_ids()) < TOLERANCE
    assert main(["train", "--init", str(tmp_path / "model.keras"), "--preset", "tiny",
                 "--source", "builtin", "--token-budget", "1024", "--batch-size", "8",
                 "--log-every", "2", "--eval-batches", "1", "--sample-length", "4",
                 "--ar-fraction", "63/64", "--output-dir", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "model.keras with preset tiny's recipe" in printed and "muon" in printed
    trained = load_model(tmp_path / "run" / "model.keras")
    assert trained.ar_fraction == 63 / 64
    assert trained.backbone.get_config() == converted.backbone.get_config()
    assert type(trained.tokenizer).__name__ == "Llama3Tokenizer"
    assert causal_logits_error(trained, task, token_ids()) > TOLERANCE  # it trained
    assert main(["convert", str(tmp_path / "run" / "model.keras"), "--to-keras-hub",
                 str(tmp_path / "back"), "--to-transformers", str(tmp_path / "hf")]) == 0
    import keras_hub

    back = keras_hub.models.CausalLM.from_preset(str(tmp_path / "back"))
    assert causal_logits_error(trained, back, token_ids()) < TOLERANCE
    assert (tmp_path / "hf" / "model.safetensors").is_file()


@pytest.mark.backend_independent
@pytest.mark.parametrize("arguments, message", [
    (["convert", "--output", "x.keras"], "received neither"),
    (["convert", "a.bin", "--from-keras-hub", "llama3_8b_en", "--output", "x.keras"],
     "received \\['a checkpoint', '--from-keras-hub'\\]"),
    (["convert", "model.bin", "--to-keras-hub", "out"], "take a .keras DualLM"),
    (["convert", "--from-keras-hub", "llama3_8b_en", "--output", "x.h5"], "must end in .keras"),
])
def test_cli_convert_refuses_bad_combinations(arguments, message, capsys):
    from keras_dualobj.cli import main

    assert main(arguments) == 2
    assert re.search(message, capsys.readouterr().err)
