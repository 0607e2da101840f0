"""keras-hub conventions on `DualLM`: preprocessor, compile(decoder=/sampler=), generate(max_length=,
dicts, tf.data), save_to_preset / from_preset, LoRA, one mode vocabulary, saving.

The checks of keras-hub's `TestCase.run_task_test` / `run_model_saving_test`, written for
our task (theirs assume labels and keras-hub `Task` internals that `DualLM` does not have).
"""

import json
import warnings

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_dualobj.data import ByteTokenizer
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM
from keras_dualobj.models import DualLMPreprocessor
from keras_dualobj.models import task_presets
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder

from conftest import tiny_backbone

TEXTS = [f"line {i}: the quick brown fox {i % 7}" for i in range(32)]


def make_model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = tiny_backbone(vocabulary_size=272)
    return DualLM(backbone, tokenizer=ByteTokenizer(), seed=seed, **kwargs)


def weights_of(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.backbone.weights}


@pytest.fixture(scope="module")
def trained():
    """A model fitted for one epoch on raw strings (through its preprocessor)."""
    model = make_model()
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    before = weights_of(model)
    history = model.fit(TEXTS, batch_size=8, epochs=1, verbose=0)
    return model, before, history


def test_preprocessor_turns_strings_into_rows_with_documents():
    preprocessor = DualLMPreprocessor(ByteTokenizer(), sequence_length=12)
    eager = preprocessor(["ab", "hello"])
    ids = ByteTokenizer().tokenize("hello")
    expected = [1, *ids] + [3] * (12 - 1 - len(ids))
    assert np.asarray(eager["token_ids"][1]).tolist() == expected
    assert np.asarray(eager["document_ids"][1]).tolist() == [0] * (1 + len(ids)) + [1] * (11 - len(ids))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(["ab", "hello"]).batch(2).map(preprocessor)))
    np.testing.assert_array_equal(mapped["token_ids"], eager["token_ids"])
    with pytest.raises(ValueError, match="longer than sequence_length=12"):
        preprocessor(["x" * 20])


def test_fit_and_evaluate_take_strings(trained):
    model, before, history = trained
    assert {"loss", "ar_loss", "md_loss"} <= set(history.history)
    after = weights_of(model)
    assert any(not np.allclose(before[k], after[k]) for k in before)
    from_strings = model.evaluate(TEXTS[:8], batch_size=8, return_dict=True, verbose=0)
    rows = model.preprocessor(TEXTS[:8])
    from_ids = model.evaluate(dict(rows), batch_size=8, return_dict=True, verbose=0)
    assert from_strings["ar_loss"] == pytest.approx(from_ids["ar_loss"], rel=1e-5)


def test_the_compiled_decoder_is_used_by_generate(trained):
    model, _, _ = trained
    prompts = [[1, 100, 101], [1, 110]]
    options = dict(max_new_tokens=6, stop_token_ids=None)
    explicit = model.generate(prompts, decoder=ARDecoder("top_k", seed=3), **options)
    try:
        model.compile(optimizer="auto", decoder=ARDecoder("top_k", seed=3))
        compiled = model.generate(prompts, **options)
        model.compile(optimizer="auto", sampler="greedy")  # keras-hub's shorthand
        assert model.decoder.sampler == "greedy"
        greedy = model.generate(prompts, **options)
        model.compile(optimizer="auto", decoder="md")
        assert isinstance(model.decoder, MDDecoder)
    finally:
        model.compile(optimizer="auto")
    assert model.decoder is None  # generate's default: ARDecoder(), top-k at 0.5
    argmax = model.generate(prompts, decoder=ARDecoder("greedy"), **options)
    for a, b in [*zip(explicit, compiled), *zip(greedy, argmax)]:
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="'beam'"):
        model.compile(sampler="beam")
    with pytest.raises(ValueError, match="pass one of them"):
        model.compile(sampler="greedy", decoder="md")


def test_generate_takes_keras_hub_inputs(trained):
    model, _, _ = trained
    text = model.generate("line 3", max_new_tokens=5, stop_token_ids=None)
    assert isinstance(text, str) and text.startswith("line 3")
    batch = model.generate(["line 3", "the"], max_length=12, stop_token_ids=None, decoder=ARDecoder("greedy"))
    padded = model.preprocessor.generate_preprocess(["line 3", "the"])
    as_dict = model.generate(padded, max_length=12, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert as_dict["token_ids"].shape == (2, 12) and as_dict["padding_mask"].all()
    assert model.preprocessor.generate_postprocess(as_dict) == batch
    dataset = tf.data.Dataset.from_tensor_slices(["line 3", "the", "fox"]).batch(2)
    from_dataset = model.generate(dataset, max_length=12, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert from_dataset == batch + model.generate(["fox"], max_length=12, stop_token_ids=None, decoder=ARDecoder("greedy"))
    new_only = model.generate(padded, max_length=12, strip_prompt=True, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert new_only["padding_mask"].sum(axis=1).tolist() == [12 - 7, 12 - 4]
    md = model.generate(["line 3", "the"], max_length=12, stop_token_ids=None, decoder=MDDecoder(num_steps=2))
    assert all(isinstance(s, str) for s in md)
    with pytest.raises(ValueError, match="at most one of `max_length`"):
        model.generate("a", max_length=8, max_new_tokens=2)
    with pytest.raises(ValueError, match="no room"):
        model.generate("line 3", max_length=5)


def test_save_to_preset_round_trips_weights_tokenizer_and_preprocessor(trained, tmp_path):
    model, _, _ = trained
    model.save_to_preset(tmp_path)
    names = {path.name for path in tmp_path.iterdir()}
    assert {"config.json", "model.weights.h5", "task.json", "preprocessor.json", "tokenizer.json", "metadata.json"} <= names
    assert json.loads((tmp_path / "task.json").read_text())["class_name"] == "DualLM"
    restored = DualLM.from_preset(str(tmp_path))
    token_ids = np.array([[1, 100, 101, 102, 103]], "int32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(token_ids)), keras.ops.convert_to_numpy(restored(token_ids)), atol=1e-6
    )
    assert isinstance(restored.preprocessor, DualLMPreprocessor)
    assert isinstance(restored.tokenizer, ByteTokenizer)
    assert restored.preprocessor.sequence_length == model.preprocessor.sequence_length
    assert restored.ar_fraction == model.ar_fraction
    assert restored.generate("line", max_new_tokens=4, decoder=ARDecoder(seed=0)) == model.generate("line", max_new_tokens=4, decoder=ARDecoder(seed=0))
    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path))
    assert isinstance(backbone, DualBackbone)
    fresh = DualLM.from_preset(str(tmp_path), load_weights=False)
    assert not np.allclose(
        keras.ops.convert_to_numpy(fresh(token_ids)), keras.ops.convert_to_numpy(model(token_ids))
    )
    (tmp_path / "task.json").unlink()
    with pytest.raises(ValueError, match="not a saved DualLM preset"):
        DualLM.from_preset(str(tmp_path))
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        DualLM.from_preset("huge")


def test_keras_saving_round_trip_keeps_preprocessor_and_decoder(trained, tmp_path):
    model, _, _ = trained
    model.compile(optimizer="auto", decoder=MDDecoder(num_steps=2, seed=1))
    path = tmp_path / "model.keras"
    try:
        model.save(path)
        expected = model.generate("line", max_new_tokens=4)
    finally:
        model.compile(optimizer="auto")
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DualLM)
    assert restored.decoder.get_config() == MDDecoder(num_steps=2, seed=1).get_config()
    assert restored.generate("line", max_new_tokens=4) == expected


@pytest.mark.parametrize("kind", ["name", "instance"])
def test_the_compiled_sampler_survives_presets_and_keras_files(trained, tmp_path, kind):
    model, _, _ = trained
    sampler = "top_k" if kind == "name" else keras_hub.samplers.TopKSampler(k=3, temperature=0.7)
    model.compile(optimizer="auto", sampler=sampler)
    try:
        model.save_to_preset(tmp_path / "preset")
        model.save(tmp_path / "model.keras")
        expected = model.generate("line", max_new_tokens=4, decoder=ARDecoder(seed=1)) if kind == "name" else None
    finally:
        model.compile(optimizer="auto")
    from_preset = DualLM.from_preset(str(tmp_path / "preset"))
    from_file = keras.saving.load_model(tmp_path / "model.keras")
    for restored in (from_preset, from_file):
        if kind == "name":
            assert restored.decoder.sampler == "top_k"
            assert restored.generate("line", max_new_tokens=4, decoder=ARDecoder(seed=1)) == expected
        else:
            assert isinstance(restored.decoder.sampler, keras_hub.samplers.TopKSampler)
            assert restored.decoder.sampler.get_config() == sampler.get_config()
    # A preset of an older version kept the sampler alone: it loads as its ARDecoder.
    assert task_presets.saved_decoder("top_k").sampler == "top_k"
    with pytest.raises(ValueError, match="decoder saved in task.json cannot be loaded.*'beam'"):
        task_presets.saved_decoder("beam", "my_preset")


def test_lora_fine_tune_changes_only_lora_weights():
    model = make_model(seed=1)
    token_ids = np.array([[1, 100, 101, 102]], "int32")
    before_logits = keras.ops.convert_to_numpy(model(token_ids))
    model.backbone.enable_lora(2)
    # LoRA starts as a zero update: the model is unchanged until trained.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(token_ids)), before_logits, atol=1e-6)
    trainable = {v.path for v in model.trainable_variables}
    assert trainable and all("lora" in path for path in trainable)
    frozen = {k: v for k, v in weights_of(model).items() if "lora" not in k}
    lora = {k: v for k, v in weights_of(model).items() if "lora" in k}
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    model.fit(TEXTS[:16], batch_size=8, epochs=1, verbose=0)
    after = weights_of(model)
    assert all(np.array_equal(frozen[k], after[k]) for k in frozen)
    assert any(not np.allclose(lora[k], after[k]) for k in lora)


def test_one_mode_vocabulary():
    model = make_model()
    token_ids = np.array([[1, 100, 101, 102]], "int32")
    md = keras.ops.convert_to_numpy(model(token_ids, mode="md"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = keras.ops.convert_to_numpy(model(token_ids, mode="bidirectional"))
    assert any(issubclass(w.category, DeprecationWarning) and "mode='md'" in str(w.message) for w in caught)
    np.testing.assert_array_equal(md, old)
    ar = keras.ops.convert_to_numpy(model(token_ids))
    np.testing.assert_array_equal(ar, keras.ops.convert_to_numpy(model(token_ids, mode="ar")))
    assert not np.allclose(ar, md)
    with pytest.raises(ValueError, match=r"\['ar', 'md', 'prefix'\]"):
        model(token_ids, mode="diffusion")


def test_a_training_step_is_one_forward_pass():
    model = make_model(ar_fraction=0.5)
    model.compile(optimizer="auto", run_eagerly=True)
    calls = []
    original = model.backbone.call

    def counting_call(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    batch = np.random.default_rng(0).integers(16, 272, (4, 8)).astype("int32")
    model.train_on_batch(batch)  # the first call also builds metrics and optimizer
    model.backbone.call = counting_call
    try:
        logs = model.train_on_batch(batch, return_dict=True)
    finally:
        model.backbone.call = original
    # α = 1/2 with 4 rows: both objectives' terms come out of the single pass.
    assert len(calls) == 1 and np.isfinite(logs["loss"])


def test_a_bpe_model_round_trips_through_a_preset(tmp_path):
    from pydoc_data.topics import topics

    from keras_dualobj.data.bpe_tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(list(topics.values())[:40], 400)
    model = DualLM.from_preset("tiny", tokenizer=tokenizer, seed=0)
    model.save_to_preset(tmp_path)
    assert {"vocabulary.json", "merges.txt"} <= {p.name for p in (tmp_path / "assets" / "tokenizer").iterdir()}
    restored = DualLM.from_preset(str(tmp_path))
    rows = model.preprocessor(["The import statement"])
    np.testing.assert_array_equal(restored.preprocessor(["The import statement"])["token_ids"], rows["token_ids"])
    assert restored.generate("The", max_new_tokens=3, stop_token_ids=None, decoder=ARDecoder(seed=0)) == model.generate("The", max_new_tokens=3, stop_token_ids=None, decoder=ARDecoder(seed=0))
