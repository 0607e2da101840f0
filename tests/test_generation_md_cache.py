"""MD decoding with the prefix KV cache (block-causal mask) and `generate(mode="md")`'s speed options."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.generation import block_causal_mask
from keras_dualobj.generation.md_block_cache import block_reveal
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder

from conftest import tiny_backbone

MASK = 4
PAD = 3
NUM_NEW = 8


def block_fill(model, token_ids, prompt_lengths, num_new_tokens, use_cache=True, **options):
    """`MDDecoder(prefix_cache=True).fill_blocks`, argmax in one block unless told otherwise."""
    options.setdefault("temperature", 0.0)
    if options.get("block_length") is None:
        options["block_length"] = num_new_tokens
    decoder = MDDecoder(prefix_cache=True, **options)
    outputs = decoder.fill_blocks(model, token_ids, prompt_lengths, use_cache)
    statistics = {name: outputs[name] for name in ("num_full_passes", "num_window_passes")}
    return outputs["token_ids"], outputs["reveal_step"], statistics


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    backbone = tiny_backbone(vocabulary_size=64, max_sequence_length=32)
    return DualLM(backbone)


@pytest.fixture(scope="module")
def canvas():
    """Three prompts of lengths 3, 5, 4, each followed by NUM_NEW masks, then padding."""
    rng = np.random.default_rng(0)
    prompt_lengths = np.array([3, 5, 4])
    token_ids = np.full((3, prompt_lengths.max() + NUM_NEW), PAD, "int32")
    for row, length in enumerate(prompt_lengths):
        token_ids[row, :length] = [1, *rng.integers(20, 60, length - 1)]
        token_ids[row, length : length + NUM_NEW] = MASK
    return token_ids, prompt_lengths


def test_block_causal_mask_matches_numpy():
    prefix_end, block_end = np.array([2, 4]), np.array([5, 6])
    mask = ops.convert_to_numpy(block_causal_mask(prefix_end, block_end, 1, 6, 7))
    expected = np.zeros((2, 6, 7), bool)
    for b in range(2):
        for q in range(6):
            i = 1 + q
            limit = block_end[b] if i >= prefix_end[b] else prefix_end[b]
            expected[b, q, :limit] = True
    np.testing.assert_array_equal(mask, expected)


def test_block_reveal_takes_the_most_confident_and_those_above_threshold():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(size=(4, 9)).astype("float32")
    eligible = rng.uniform(size=(4, 9)) < 0.6
    for num_reveal, threshold in ((1, 0.7), (3, 1.0), (2, 0.0)):
        got = ops.convert_to_numpy(block_reveal(confidence, eligible, num_reveal, threshold))
        ranked = np.where(eligible, confidence, -1.0)
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :num_reveal]
        expected = confidence > threshold
        np.put_along_axis(expected, top, True, axis=1)
        np.testing.assert_array_equal(got, expected & eligible)


@pytest.mark.parametrize(
    "block_length, options",
    [
        (NUM_NEW, {}),  # one block: the whole canvas after the prompts
        (NUM_NEW, {"num_steps": 4}),
        (4, {"threshold": 0.3}),
        (2, {}),
    ],
)
def test_cached_equals_uncached_block_decoder(model, canvas, block_length, options):
    token_ids, prompt_lengths = canvas
    cached = block_fill(
        model, token_ids, prompt_lengths, NUM_NEW, block_length=block_length, **options
    )
    uncached = block_fill(
        model, token_ids, prompt_lengths, NUM_NEW, block_length=block_length,
        use_cache=False, **options,
    )
    np.testing.assert_array_equal(cached[0], uncached[0])
    np.testing.assert_array_equal(cached[1], uncached[1])
    num_blocks = NUM_NEW // block_length
    assert cached[2]["num_full_passes"] == num_blocks
    assert cached[2]["num_window_passes"] == uncached[2]["num_full_passes"] - num_blocks
    filled = cached[0] != token_ids
    positions = np.arange(token_ids.shape[1])[None, :]
    new = (positions >= prompt_lengths[:, None]) & (positions < prompt_lengths[:, None] + NUM_NEW)
    assert (cached[0] != MASK).all() and not filled[~new].any()


def test_prefix_never_sees_the_block(model, canvas):
    """What the cache relies on: the prefix's logits do not depend on the block's tokens."""
    token_ids, prompt_lengths = canvas
    length = token_ids.shape[1]
    cache = ops.zeros((3, 2, 2, length, 2, 16))
    mask = block_causal_mask(prompt_lengths - 1, prompt_lengths + NUM_NEW, 0, length, length)
    changed = np.where(token_ids == MASK, 30, token_ids).astype("int32")
    first, _, _ = model.call_with_cache(token_ids, cache, 0, attention_mask=mask)
    second, _, _ = model.call_with_cache(changed, cache, 0, attention_mask=mask)
    first, second = ops.convert_to_numpy(first), ops.convert_to_numpy(second)
    for row, prompt_length in enumerate(prompt_lengths):
        np.testing.assert_allclose(first[row, : prompt_length - 1], second[row, : prompt_length - 1],
                                   atol=1e-5)
        assert np.abs(first[row, prompt_length:] - second[row, prompt_length:]).max() > 1e-4


def test_threshold_one_and_zero_with_the_cache(model, canvas):
    token_ids, prompt_lengths = canvas
    _, reveal_step, stats = block_fill(
        model, token_ids, prompt_lengths, NUM_NEW, block_length=4, threshold=1.0
    )
    assert stats == {"num_full_passes": 2, "num_window_passes": 6}
    assert all(sorted(row[row >= 0].tolist()) == list(range(NUM_NEW)) for row in reveal_step)
    _, reveal_step, stats = block_fill(
        model, token_ids, prompt_lengths, NUM_NEW, block_length=4, threshold=0.0
    )
    assert stats == {"num_full_passes": 2, "num_window_passes": 0}
    assert all(sorted(row[row >= 0].tolist()) == [0] * 4 + [1] * 4 for row in reveal_step)


def test_generate_md_with_prefix_cache_and_threshold(model, canvas):
    token_ids, prompt_lengths = canvas
    prompts = [row[:length] for row, length in zip(token_ids, prompt_lengths)]
    expected, _, _ = block_fill(
        model, token_ids, prompt_lengths, NUM_NEW, block_length=4, threshold=0.3
    )
    outputs = model.generate(prompts, max_new_tokens=NUM_NEW, stop_token_ids=None, decoder=MDDecoder(block_length=4, threshold=0.3, prefix_cache=True, temperature=0.0))
    for row, output, length in zip(expected, outputs, prompt_lengths):
        np.testing.assert_array_equal(output, row[: length + NUM_NEW])
    # Without the cache, the threshold runs the full-attention decoder.
    uncached = model.generate(prompts, max_new_tokens=NUM_NEW, stop_token_ids=None, decoder=MDDecoder(threshold=0.0))
    assert [len(row) for row in uncached] == [length + NUM_NEW for length in prompt_lengths]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.5, "num_steps": 4}, "exclusive"),
        ({"prefix_cache": "yes"}, "prefix_cache"),  # a TypeError, as for any bad switch
        ({"threshold": 0.5, "remasking": "random"}, "remasking"),
        ({"prefix_cache": True, "block_length": 3}, "block_length"),
    ],
)
def test_bad_md_speed_options_raise(model, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        model.generate([1, 20, 21], max_new_tokens=8, decoder=MDDecoder(**kwargs))


def test_the_block_cache_needs_prompts_before_the_masks(model):
    with pytest.raises(ValueError, match="prompt_lengths"):
        block_fill(model, np.full((1, 6), MASK, "int32"), [0], 4)
    with pytest.raises(ValueError, match="must start right after each prompt"):
        block_fill(model, np.array([[1, 20, MASK, MASK, 21]], "int32"), [3], 2)
    with pytest.raises(ValueError, match="prefix_cache=False"):
        MDDecoder(prefix_cache=True).fill(model, np.array([[1, 20, MASK]], "int32"))


def test_cli_generate_md_with_prefix_cache(model, tmp_path, capsys):
    from keras_dualobj.cli import main

    path = tmp_path / "tiny.keras"
    model.save(path)
    argv = ["generate", str(path), "--prompt-ids", "1 20 21", "--decoder", "md", "--max-new-tokens",
            "4", "--block-length", "2", "--threshold", "0.5", "--prefix-cache", "--no-stop",
            "--seed", "0"]
    assert main(argv) == 0
    expected = model.generate([[1, 20, 21]], max_new_tokens=4, stop_token_ids=None, decoder=MDDecoder(block_length=2, threshold=0.5, prefix_cache=True, seed=0))[0]
    assert capsys.readouterr().out.split() == [str(token) for token in expected]
    assert main(["generate", str(path), "--prompt-ids", "1 20", "--prefix-cache"]) == 2
    assert "--prefix-cache apply to --decoder md only" in capsys.readouterr().err
