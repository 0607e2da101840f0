"""AR generation: the KV cache, greedy decoding, samplers, stop tokens, strings, compilation."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.data import ByteTokenizer
from keras_dualobj.decoders import ARDecoder

from conftest import tiny_backbone

VOCABULARY_SIZE = 64
# float32 logits of order 1: cached and uncached passes differ only by summation order.
LOGITS_TOLERANCE = 1e-5


def tiny_model(vocabulary_size=VOCABULARY_SIZE, **kwargs):
    keras.utils.set_random_seed(7)
    return DualLM(tiny_backbone(vocabulary_size=vocabulary_size, max_sequence_length=32), **kwargs)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def greedy_reference(model, prompts, max_new_tokens):
    """Argmax of a full causal forward pass, repeated once per new token.

    Rows are right-padded to one fixed shape (causal attention never sees the
    padding), so eager backends do not recompile for every length.
    """
    lengths = [len(prompt) for prompt in prompts]
    token_ids = np.zeros((len(prompts), max(lengths) + max_new_tokens), "int32")
    for row, prompt in enumerate(prompts):
        token_ids[row, : len(prompt)] = prompt
    for step in range(max_new_tokens):
        logits = ops.convert_to_numpy(model(token_ids))
        for row, length in enumerate(lengths):
            position = length + step
            token_ids[row, position] = np.argmax(logits[row, position - 1])
    return [row[: length + max_new_tokens].tolist() for row, length in zip(token_ids, lengths)]


def test_cached_logits_equal_uncached_token_by_token(model):
    token_ids = np.random.default_rng(0).integers(5, VOCABULARY_SIZE, (2, 12)).astype("int32")
    token_ids[:, 0] = 1
    full = ops.convert_to_numpy(model(token_ids))
    cache = ops.zeros((2, 2, 2, 12, 2, 16))
    for index in range(12):
        # A tensor index, as in the decoding loop, so eager JAX does not recompile.
        logits, _, cache = model.call_with_cache(
            token_ids[:, index : index + 1], cache, ops.convert_to_tensor(index)
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits)[:, 0], full[:, index], atol=LOGITS_TOLERANCE
        )


def test_seeded_cache_continues_like_a_full_pass(model):
    token_ids = np.random.default_rng(1).integers(5, VOCABULARY_SIZE, (2, 10)).astype("int32")
    padded = np.pad(token_ids[:, :6], ((0, 0), (0, 4)))
    _, cache = model._build_cache(padded)
    full = ops.convert_to_numpy(model(token_ids))
    for index in range(6, 10):
        logits, _, cache = model.call_with_cache(
            token_ids[:, index : index + 1], cache, ops.convert_to_tensor(index)
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits)[:, 0], full[:, index], atol=LOGITS_TOLERANCE
        )


def test_greedy_equals_argmax_of_repeated_full_passes_for_ragged_prompts(model):
    prompts = [[1, 20, 21, 22, 23], [1, 30], [1, 40, 41]]
    outputs = model.generate(prompts, max_new_tokens=6, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert [row.tolist() for row in outputs] == greedy_reference(model, prompts, 6)


def test_uncached_decoding_gives_the_same_tokens(model):
    prompts = [[1, 20, 21, 22], [1, 30]]
    cached = model.generate(prompts, max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder("greedy"))
    uncached = model.generate(prompts, max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder("greedy", use_cache=False))
    assert [row.tolist() for row in cached] == [row.tolist() for row in uncached]


def test_generation_compiles_once_per_shape():
    # A fresh model (not the shared fixture), so its function cache starts empty.
    model = tiny_model()
    traces = []
    build_cache = model._build_cache

    def counting_build_cache(token_ids):
        traces.append(tuple(token_ids.shape))
        return build_cache(token_ids)

    model._build_cache = counting_build_cache
    prompts = [[1, 20, 21], [1, 30, 31]]
    first = model.generate(prompts, max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder("greedy"))
    second = model.generate([[1, 22, 23], [1, 32, 33]], max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder("greedy"))
    model.generate([[1, 22, 23, 24]], max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert len(model._decoding_functions) == 1
    # Eager PyTorch runs the Python function on every call; the compiled backends
    # trace it once per input shape.
    expected = 3 if keras.config.backend() == "torch" else 2
    assert len(traces) == expected
    assert [row.tolist() for row in first] == greedy_reference(model, prompts, 4)
    assert second[1].tolist() == greedy_reference(model, [[1, 32, 33]], 4)[0]


def test_stop_tokens_end_each_row_after_its_first_stop(model):
    prompts = [[1, 20, 21], [1, 30, 31, 32]]
    full = model.generate(prompts, max_new_tokens=8, stop_token_ids=None, decoder=ARDecoder("greedy"))
    stop = int(full[0][4])  # the second new token of row 0
    stopped = model.generate(prompts, max_new_tokens=8, stop_token_ids=(stop,), decoder=ARDecoder("greedy"))
    for prompt, row, full_row in zip(prompts, stopped, full):
        new = full_row[len(prompt) :].tolist()
        expected = full_row[: len(prompt) + new.index(stop) + 1] if stop in new else full_row
        assert row.tolist() == expected.tolist()
    assert stopped[0][-1] == stop and len(stopped[0]) <= 5


def test_auto_stop_uses_eos_and_strip_prompt_returns_only_new_tokens(model):
    prompts = [[1, 20, 21], [1, 30]]
    full = model.generate(prompts, max_new_tokens=6, stop_token_ids=(model.eos_token_id,), decoder=ARDecoder("greedy"))
    auto = model.generate(prompts, max_new_tokens=6, decoder=ARDecoder("greedy"))
    stripped = model.generate(prompts, max_new_tokens=6, strip_prompt=True, decoder=ARDecoder("greedy"))
    for prompt, row, auto_row, new in zip(prompts, full, auto, stripped):
        assert auto_row.tolist() == row.tolist()
        assert new.tolist() == row[len(prompt) :].tolist()


def test_seeded_samplers_are_reproducible_and_seed_dependent(model):
    prompts = [[1, 20, 21], [1, 30]]
    options = dict(max_new_tokens=8, stop_token_ids=None)
    first = model.generate(prompts, decoder=ARDecoder("random", 2.0, seed=1), **options)
    again = model.generate(prompts, decoder=ARDecoder("random", 2.0, seed=1), **options)
    other = model.generate(prompts, decoder=ARDecoder("random", 2.0, seed=2), **options)
    assert [r.tolist() for r in first] == [r.tolist() for r in again]
    assert [r.tolist() for r in first] != [r.tolist() for r in other]


def test_sampler_instances_and_top_k_one_equals_greedy(model):
    prompts = [[1, 20, 21], [1, 30]]
    greedy = model.generate(prompts, max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder("greedy"))
    top_one = model.generate(prompts, max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder(keras_hub.samplers.TopKSampler(k=1, seed=0)))
    assert [r.tolist() for r in top_one] == [r.tolist() for r in greedy]


def test_string_prompts_round_trip_through_the_tokenizer():
    model = tiny_model(vocabulary_size=272, tokenizer=ByteTokenizer())
    text = model.generate("ab", max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder("greedy"))
    ids = model.generate([1, 16 + ord("a"), 16 + ord("b")], max_new_tokens=5, stop_token_ids=None, decoder=ARDecoder("greedy"))
    special = np.isin(ids, model.special_token_ids)
    assert isinstance(text, str) and text.startswith("ab")
    assert text == ByteTokenizer().detokenize(ids[~special])
    batch = model.generate(["ab", "xyz"], max_new_tokens=3, strip_prompt=True)
    assert isinstance(batch, list) and len(batch) == 2
    assert all(isinstance(new, str) for new in batch)


def test_any_object_with_tokenize_and_detokenize_is_a_tokenizer():
    class DigitTokenizer:
        def tokenize(self, text):
            return [16 + int(digit) for digit in text]

        def detokenize(self, ids):
            return "".join(str(i - 16) if 16 <= i < 26 else "?" for i in ids)

    model = tiny_model(tokenizer=DigitTokenizer())
    text = model.generate("123", max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder("greedy"))
    ids = model.generate([1, 17, 18, 19], max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder("greedy"))
    assert text == DigitTokenizer().detokenize(ids[1:])


@pytest.mark.parametrize(
    "prompts, options, message",
    [
        ([], {}, "non-empty"),
        ([[]], {}, "non-empty"),
        ([[1, 20], []], {}, r"prompts\[1\]"),
        ("hello", {}, "no tokenizer"),
        ([[1, 20]], {"decoder": "diffusion"}, "'diffusion'"),
        ([[1, 20]], {"max_new_tokens": 0}, "max_new_tokens"),
        ([[1, 20]], {"max_new_tokens": 31}, "max_sequence_length of 32"),
        ([[1, 20]], {"decoder": "beam"}, "'beam'"),
        ([[1, 99]], {}, "token id 99"),
        ([[1, 20]], {"stop_token_ids": "eos"}, "'eos'"),
        ([[1, 20]], {"stop_token_ids": (2, 3)}, "padding id 3"),
    ],
)
def test_bad_generation_input_raises_a_clear_error(model, prompts, options, message):
    options = {"max_new_tokens": 4, **options}
    with pytest.raises(ValueError, match=message):
        model.generate(prompts, **options)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: ARDecoder("beam"), ValueError, "'beam'"),
        (lambda: ARDecoder(temperature=0.0), ValueError, "sampler='greedy' for argmax"),
        (lambda: ARDecoder(keras_hub.samplers.TopKSampler(k=2), temperature=0.7), ValueError,
         "on the sampler instance"),
        (lambda: ARDecoder(use_cache=1), TypeError, "use_cache"),
        (lambda: ARDecoder(seed=-1), ValueError, "seed"),
    ],
)
def test_a_bad_decoder_option_is_refused_when_the_decoder_is_built(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_passing_an_old_decoding_keyword_to_generate_is_a_type_error(model):
    # The options moved to decoder objects: an old call fails loudly, never ignored.
    with pytest.raises(TypeError, match="num_steps"):
        model.generate([[1, 20]], num_steps=2)
