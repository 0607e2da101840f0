"""Self-speculative decoding: greedy output equals AR greedy, sampling is exactly AR's,
the acceptance rule against NumPy, and threshold MD unmasking."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.generation import speculative_acceptance as acceptance
from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.md_decoding import md_decode
from keras_dualobj.generation.md_decoding import md_decode_step
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.md_threshold_decoding import md_threshold_decode
from keras_dualobj.generation.md_threshold_decoding import threshold_reveal
from keras_dualobj.generation.prompts import truncate_at_stop
from keras_dualobj.generation.speculative import make_loop_runner
from keras_dualobj.generation.speculative import speculative_decode
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from keras_dualobj.decoders import SpeculativeDecoder

from conftest import tiny_backbone

VOCABULARY_SIZE = 64
# Chi-square critical values at p = 0.001 (a false alarm once in 1000 seeds).
CHI_SQUARE_CRITICAL = {4: 18.467, 6: 22.458}


def speculate(model, token_ids, prompt_mask, draft_length, stop_token_ids=None, **options):
    """`SpeculativeDecoder.decode`: the tokens, and the outputs with the statistics."""
    decoder = SpeculativeDecoder(draft_length, **options)
    outputs = decoder.decode(model, token_ids, prompt_mask, stop_token_ids)
    return outputs["token_ids"], outputs


def threshold_fill(model, token_ids, document_ids, fill_positions, threshold, **options):
    """`MDDecoder(threshold=...).fill`, argmax unless told otherwise."""
    options.setdefault("temperature", 0.0)
    decoder = MDDecoder(threshold=threshold, **options)
    outputs = decoder.fill(model, token_ids, document_ids, fill_positions)
    return outputs["token_ids"], outputs["reveal_step"], outputs["num_steps"]


def tiny_model(vocabulary_size, seed):
    keras.utils.set_random_seed(seed)
    backbone = tiny_backbone(vocabulary_size=vocabulary_size)
    return DualLM(backbone, ar_fraction=0.5, seed=seed)


def periodic_rows(num_rows, length, rng):
    """Rows `<s> a a+d a+2d ...` (mod 40, offset past the special ids): learnable in a few steps."""
    starts = rng.integers(0, 40, (num_rows, 1))
    strides = rng.integers(1, 4, (num_rows, 1))
    rows = 5 + (starts + strides * np.arange(length - 1)[None, :]) % 40
    return np.concatenate([np.ones((num_rows, 1), int), rows], axis=1).astype("int32")


@pytest.fixture(scope="module")
def trained_model():
    model = tiny_model(VOCABULARY_SIZE, seed=3)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    rows = periodic_rows(256, 32, np.random.default_rng(0))
    model.fit(rows, batch_size=32, epochs=3, verbose=0)
    return model


def padded_prompts(rows, max_new_tokens, pad_token_id=3):
    length = max(len(row) for row in rows) + max_new_tokens
    token_ids = np.full((len(rows), length), pad_token_id, "int32")
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
    prompt_mask = np.arange(length)[None, :] < np.array([len(r) for r in rows])[:, None]
    return token_ids, prompt_mask


MAX_NEW_TOKENS = 16


@pytest.fixture(scope="module")
def prompts():
    """Three prompts of different lengths in one batch."""
    rows = periodic_rows(3, 12, np.random.default_rng(1))
    return [row[:length] for row, length in zip(rows, (3, 7, 12))]


def test_greedy_equals_ar_greedy_for_every_draft_length(trained_model, prompts):
    reference = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=None, decoder=ARDecoder("greedy"))
    token_ids, prompt_mask = padded_prompts(prompts, MAX_NEW_TOKENS)
    rates = []
    for draft_length, draft_mode in ((1, "full"), (4, "full"), (8, "full"), (4, "cached")):
        tokens, statistics = speculate(
            trained_model, token_ids, prompt_mask, draft_length, draft_mode=draft_mode
        )
        for row, expected in zip(tokens, reference):
            assert row[: len(expected)].tolist() == expected.tolist(), draft_length
        assert statistics["num_positions"] == token_ids.shape[1] - 3
        assert 1.0 <= statistics["tokens_per_verify_pass"] <= draft_length + 1
        rates.append(statistics["draft_acceptance_rate"])
    # The learned pattern makes the MD face's drafts agree with the AR face at times,
    # and disagree at others: both the accepting path and the cache roll-back run.
    assert 0.0 < rates[2] < 1.0, rates
    assert 0.0 < rates[3] < 1.0, rates


def test_fused_greedy_equals_ar_greedy_with_stop_tokens(trained_model, prompts):
    """One pass per iteration (verify + next draft): the AR output for every draft length."""
    token_ids, prompt_mask = padded_prompts(prompts, MAX_NEW_TOKENS)
    free_run = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=None, decoder=ARDecoder("greedy"))
    acceptance = []
    for draft_length in (1, 4, 8):
        tokens, statistics = speculate(
            trained_model, token_ids, prompt_mask, draft_length, draft_mode="fused"
        )
        for row, expected in zip(tokens, free_run):
            assert row[: len(expected)].tolist() == expected.tolist(), draft_length
        assert statistics["num_positions"] == token_ids.shape[1] - 3
        acceptance.append(statistics["draft_acceptance_rate"])
    # Fused drafts (made from the mask block) are accepted at times: the drafting path runs.
    assert max(acceptance) > 0.0, acceptance
    stop_token_ids = tuple(
        sorted({int(row[len(prompt) + 5]) for row, prompt in zip(free_run, prompts)})
    )
    reference = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=stop_token_ids, decoder=ARDecoder("greedy"))
    tokens, _ = speculate(
        trained_model, token_ids, prompt_mask, 4, draft_mode="fused",
        stop_token_ids=stop_token_ids,
    )
    for row, expected, prompt in zip(tokens, reference, prompts):
        assert truncate_at_stop(row, len(prompt), stop_token_ids).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="fused"):
        speculate(trained_model, token_ids, prompt_mask, 4, draft_mode="fused",
                             temperature=0.5)


def test_stop_tokens_and_multi_step_drafts_match_ar(trained_model, prompts):
    free_run = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=None, decoder=ARDecoder("greedy"))
    # Every row's third new token is a stop token: every row stops early.
    stop_token_ids = tuple(
        sorted({int(row[len(prompt) + 2]) for row, prompt in zip(free_run, prompts)})
    )
    reference = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=stop_token_ids, decoder=ARDecoder("greedy"))
    token_ids, prompt_mask = padded_prompts(prompts, MAX_NEW_TOKENS)
    draft_length = 4
    tokens, statistics = speculate(
        trained_model, token_ids, prompt_mask, draft_length, draft_steps=2,
        stop_token_ids=stop_token_ids,
    )
    last_stop = 0
    for row, expected, prompt in zip(tokens, reference, prompts):
        assert truncate_at_stop(row, len(prompt), stop_token_ids).tolist() == expected.tolist()
        last_stop = max(last_stop, len(expected))
    # The loop ends within one pass (at most k + 1 positions) of the last row's stop.
    assert statistics["num_positions"] <= last_stop - 3 + draft_length
    assert statistics["num_positions"] < token_ids.shape[1] - 3


# --- The acceptance rule as pure functions ----------------------------------------------


def random_distributions(rng, shape):
    logits = rng.normal(size=shape) * 1.5
    probabilities = np.exp(logits)
    return (probabilities / probabilities.sum(-1, keepdims=True)).astype("float32")


def test_acceptance_and_residual_match_numpy():
    rng = np.random.default_rng(0)
    p, q = random_distributions(rng, (3, 4, 6)), random_distributions(rng, (3, 3, 6))
    draft = rng.integers(0, 6, (3, 3))
    expected = np.minimum(
        1.0, np.take_along_axis(p[:, :3], draft[..., None], -1) /
        np.take_along_axis(q, draft[..., None], -1)
    )[..., 0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(acceptance.acceptance_probabilities(p, q, draft)), expected, rtol=1e-6
    )
    residual = np.maximum(p[:, :3] - q, 0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(acceptance.residual_distribution(p[:, :3], q)),
        residual / residual.sum(-1, keepdims=True),
        rtol=1e-5,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(acceptance.residual_distribution(p, p)), p, rtol=1e-6
    )


def test_first_emitted_token_is_exactly_the_target_distribution():
    """`q(v) a(v) + (1 - sum_x q(x) a(x)) r(v) = p(v)` with the functions' own a and r."""
    rng = np.random.default_rng(1)
    vocabulary_size = 7
    p, q = random_distributions(rng, (5, 1, vocabulary_size)), random_distributions(
        rng, (5, 1, vocabulary_size)
    )
    every_token = np.arange(vocabulary_size)
    accept = np.stack(
        [
            ops.convert_to_numpy(
                acceptance.acceptance_probabilities(p, q, np.full((5, 1), token))
            )[:, 0]
            for token in every_token
        ],
        axis=1,
    )
    residual = ops.convert_to_numpy(acceptance.residual_distribution(p, q))[:, 0]
    kept = q[:, 0] * accept
    marginal = kept + (1.0 - kept.sum(-1, keepdims=True)) * residual
    np.testing.assert_allclose(marginal, p[:, 0], atol=1e-6)


def chi_square(samples, probabilities):
    counts = np.bincount(samples, minlength=len(probabilities))
    expected = probabilities * len(samples)
    return float(((counts - expected) ** 2 / expected).sum())


def test_monte_carlo_emitted_tokens_follow_the_target():
    rng = np.random.default_rng(2)
    num_rows, draft_length, vocabulary_size = 20000, 3, 5
    # One target p_j and one draft q_j per position, shared by the rows.
    p = np.broadcast_to(
        random_distributions(rng, (1, draft_length + 1, vocabulary_size)),
        (num_rows, draft_length + 1, vocabulary_size),
    )
    q = np.broadcast_to(
        random_distributions(rng, (1, draft_length, vocabulary_size)),
        (num_rows, draft_length, vocabulary_size),
    )
    cumulative = np.cumsum(q[0], axis=-1)
    draft = np.stack(
        [np.searchsorted(cumulative[j], rng.random(num_rows), side="right")
         for j in range(draft_length)],
        axis=1,
    ).clip(0, vocabulary_size - 1)
    num_accepted, replacements = acceptance.speculative_accept(
        p, q, draft, rng.random((num_rows, draft_length)),
        rng.random((num_rows, draft_length + 1)),
    )
    num_accepted = ops.convert_to_numpy(num_accepted)
    replacements = ops.convert_to_numpy(replacements)
    padded = np.pad(draft, ((0, 0), (0, 1)))
    emitted = np.where(np.arange(draft_length + 1)[None] < num_accepted[:, None], padded,
                       replacements)
    critical = CHI_SQUARE_CRITICAL[vocabulary_size - 1]
    for position in range(2):
        reached = num_accepted >= position
        assert reached.sum() > 2000
        assert chi_square(emitted[reached, position], p[0, position]) < critical, position
    # Some drafts are accepted, some rejected: both branches are exercised.
    assert 0 < (num_accepted == 0).mean() < 1


def test_sample_categorical_matches_inverse_cdf():
    rng = np.random.default_rng(3)
    probabilities = random_distributions(rng, (50, 6))
    uniforms = rng.random(50).astype("float32")
    expected = [np.searchsorted(np.cumsum(row), u * row.sum(), side="right")
                for row, u in zip(probabilities, uniforms)]
    assert ops.convert_to_numpy(
        acceptance.sample_categorical(probabilities, uniforms)
    ).tolist() == expected


def test_sampled_model_output_follows_the_ar_face():
    """End to end on a 12-id vocabulary: the first two new tokens' frequencies match
    the AR face's exact distributions (chi-square, fixed seed)."""
    vocabulary_size, num_rows = 12, 2000
    model = tiny_model(vocabulary_size, seed=5)
    prompt = np.array([1, 7, 9], "int32")
    token_ids = np.full((num_rows, 5), 3, "int32")
    token_ids[:, :3] = prompt
    prompt_mask = np.arange(5)[None, :] < 3
    prompt_mask = np.broadcast_to(prompt_mask, token_ids.shape)
    tokens, _ = speculate(
        model, token_ids, prompt_mask, draft_length=2, temperature=1.0, seed=0
    )
    # One causal pass over `prompt + v` for every id v gives both exact distributions.
    continued = np.concatenate(
        [np.broadcast_to(prompt, (vocabulary_size, 3)), np.arange(vocabulary_size)[:, None]],
        axis=1,
    ).astype("int32")
    logits = ops.convert_to_numpy(model(continued))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    first, second = probabilities[0, 2], probabilities[:, 3]
    second = first @ second
    # Merge the rarest ids so every expected count is >= 5; df = 6 after merging to 7 bins.
    for position, probabilities in ((3, first), (4, second)):
        order = np.argsort(probabilities)[::-1]
        bins = np.minimum(np.argsort(order), 6)
        merged = np.bincount(bins, weights=probabilities, minlength=7)
        assert merged.min() * num_rows >= 5
        statistic = chi_square(bins[tokens[:, position]], merged)
        assert statistic < CHI_SQUARE_CRITICAL[6], (position, statistic)


# --- Threshold MD unmasking ------------------------------------------------------------


def test_threshold_reveal_matches_numpy():
    rng = np.random.default_rng(4)
    confidence = rng.random((6, 9)).astype("float32")
    eligible = rng.random((6, 9)) < 0.6
    eligible[0] = False
    for threshold in (0.0, 0.3, 0.7, 1.0):
        expected = eligible & (confidence > threshold)
        best = np.argmax(np.where(eligible, confidence, -1.0), axis=1)
        expected[np.arange(6), best] |= eligible.any(axis=1)
        revealed = ops.convert_to_numpy(threshold_reveal(confidence, eligible, threshold))
        assert revealed.tolist() == expected.tolist(), threshold


@pytest.fixture(scope="module")
def md_canvas():
    prompts = periodic_rows(2, 6, np.random.default_rng(5))
    token_ids = np.concatenate([prompts, np.full((2, 8), 4, "int32")], axis=1)
    return token_ids, np.zeros_like(token_ids), token_ids == 4


def fixed_schedule_decode(model, canvas, num_steps, block_length):
    token_ids, document_ids, fill = canvas
    seed_generator = keras.random.SeedGenerator(0)

    def step(inputs):
        return md_decode_step(model.logits, inputs, 4, seed_generator)

    function = compile_decoding_function(step, model, [seed_generator.state])
    schedule = reveal_schedule(8, num_steps, block_length)
    return md_decode(function, token_ids, document_ids, fill, schedule, block_length)


def test_threshold_one_reveals_one_per_step_in_confidence_order(trained_model, md_canvas):
    tokens, reveal_step, num_steps = threshold_fill(
        trained_model, *md_canvas, threshold=1.0, block_length=4
    )
    assert num_steps == 8
    expected_tokens, expected_steps = fixed_schedule_decode(trained_model, md_canvas, 8, 4)
    assert tokens.tolist() == expected_tokens.tolist()
    assert reveal_step.tolist() == expected_steps.tolist()


def test_threshold_zero_reveals_each_block_in_one_step(trained_model, md_canvas):
    tokens, reveal_step, num_steps = threshold_fill(
        trained_model, *md_canvas, threshold=0.0, block_length=4
    )
    assert num_steps == 2
    expected_tokens, expected_steps = fixed_schedule_decode(trained_model, md_canvas, 2, 4)
    assert tokens.tolist() == expected_tokens.tolist()
    assert reveal_step.tolist() == expected_steps.tolist()
    # An intermediate threshold takes between one and eight steps per block of four.
    _, reveal_step, num_steps = threshold_fill(
        trained_model, *md_canvas, threshold=0.5, block_length=4
    )
    assert 2 <= num_steps <= 8
    assert sorted(set(reveal_step[md_canvas[2]].tolist())) == list(range(num_steps))


# --- Bad input ---------------------------------------------------------------------------


def test_bad_options_raise(trained_model):
    token_ids, prompt_mask = padded_prompts([[1, 20]], 4)
    with pytest.raises(ValueError, match="draft_steps"):
        speculate(trained_model, token_ids, prompt_mask, 2, draft_steps=3)
    with pytest.raises(ValueError, match="draft_mode"):
        speculate(trained_model, token_ids, prompt_mask, 2, draft_mode="partial")
    with pytest.raises(ValueError, match="draft_length"):
        speculate(trained_model, token_ids, prompt_mask, 0)
    with pytest.raises(ValueError, match="temperature"):
        speculate(trained_model, token_ids, prompt_mask, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="prompt_mask"):
        speculate(trained_model, token_ids, ~prompt_mask, 2)
    with pytest.raises(ValueError, match="loop_runner"):
        speculative_decode(
            trained_model.call_with_cache, trained_model._build_cache, trained_model.logits,
            {"token_ids": token_ids, "prompt_mask": prompt_mask}, 2, 4, temperature=1.0,
        )
    assert len(make_loop_runner(0).variables) == 1
    with pytest.raises(ValueError, match="threshold"):
        threshold_fill(trained_model, token_ids, token_ids, token_ids == 3, 1.5)
    with pytest.raises(ValueError, match="block_length"):
        md_threshold_decode(None, token_ids, token_ids, token_ids == 3, 3, 0.5)


def test_generate_mode_speculative_is_the_ar_output_and_checks_its_options(
    trained_model, prompts
):
    reference = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, decoder=ARDecoder("greedy"))
    for draft_mode in ("cached", "full"):
        fast = trained_model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, decoder=SpeculativeDecoder(draft_length=3, draft_mode=draft_mode))
        assert [row.tolist() for row in fast] == [row.tolist() for row in reference]
    total = trained_model.generate({"token_ids": np.array([[1, 9, 10]]), "padding_mask": np.ones((1, 3), bool)}, max_length=12, stop_token_ids=None, decoder=SpeculativeDecoder())
    assert total["token_ids"].shape == (1, 12)
    with pytest.raises(TypeError, match="sampler"):
        SpeculativeDecoder(sampler="top_k")  # an option of another decoder
    with pytest.raises(ValueError, match="draft_steps.*between 1 and `draft_length` \\(2\\).*5"):
        trained_model.generate(prompts, decoder=SpeculativeDecoder(draft_length=2, draft_steps=5))
    with pytest.raises(ValueError, match="draft_mode"):
        trained_model.generate(prompts, decoder=SpeculativeDecoder(draft_mode="fast"))
