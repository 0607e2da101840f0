"""Scoring: exact AR / prefix-LM NLL, the MD bound's estimator, language-modelling totals."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.evaluation import evaluate_language_modeling
from keras_dualobj.evaluation import token_rows
from keras_dualobj.evaluation.md_bound import stratified_mask_counts

from conftest import tiny_backbone

MASK = 4
VOCABULARY_SIZE = 32


def scoring_backbone(vocabulary_size=VOCABULARY_SIZE, num_layers=2):
    return tiny_backbone(
        vocabulary_size=vocabulary_size, num_layers=num_layers, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=32,
    )


def fixed_logits_model(logits, md_variant="shifted"):
    """A DualLM whose logits are `logits` at every position, whatever the input.

    All embeddings are one vector and every block's output projections are zero, so
    each hidden state is `final_norm(ones) = ones`; the head `ones/width ⊗ logits`
    then maps it to `logits`.
    """
    backbone = scoring_backbone(vocabulary_size=len(logits), num_layers=1)
    model = DualLM(backbone, md_variant=md_variant)
    width = backbone.hidden_dim
    embedding = backbone.token_embedding
    embedding.embeddings.assign(np.ones((len(logits), width), "float32"))
    embedding.reverse_embeddings.assign(
        np.outer(np.ones(width) / width, logits).astype("float32")
    )
    for block in backbone.transformer_layers:
        block.attention.output_dense.kernel.assign(
            np.zeros(block.attention.output_dense.kernel.shape, "float32")
        )
        block.feed_forward.down_dense.kernel.assign(
            np.zeros(block.feed_forward.down_dense.kernel.shape, "float32")
        )
    return model


def log_softmax(logits):
    logits = np.asarray(logits, "float64")
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return DualLM(scoring_backbone())


@pytest.fixture(scope="module")
def fixed():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, VOCABULARY_SIZE)
    return fixed_logits_model(logits), -log_softmax(logits)


TOKENS = np.array([[1, 7, 9, 12, 30, 8, 8, 21, 5], [1, 22, 6, 17, 3, 3, 3, 3, 3]], "int32")


def test_fixed_logits_model_has_the_logits_it_was_built_with(fixed):
    model, cross_entropy = fixed
    for prefix in (0, TOKENS.shape[1]):
        logits = ops.convert_to_numpy(
            model.logits(TOKENS, np.zeros_like(TOKENS), np.full((2,), prefix))
        )
        expected = np.broadcast_to(cross_entropy, logits.shape)
        np.testing.assert_allclose(-log_softmax(logits), expected, atol=1e-4)


def test_ar_nll_is_the_sum_of_next_token_cross_entropies(model):
    result = model.score(TOKENS)
    logits = ops.convert_to_numpy(model(TOKENS))
    log_probabilities = log_softmax(logits)
    for row in range(2):
        # Default targets: positions >= 1 holding a non-special token (ids 1-4 special).
        targets = [j for j in range(1, TOKENS.shape[1]) if TOKENS[row, j] > 4]
        expected = -sum(log_probabilities[row, j - 1, TOKENS[row, j]] for j in targets)
        assert result["num_tokens"][row] == len(targets)
        np.testing.assert_allclose(result["nll"][row], expected, rtol=1e-5)
    assert (result["standard_error"] == 0).all()


def test_prefix_nll_uses_bidirectional_attention_over_the_prefix(model):
    prefix_lengths = np.array([4, 3])
    prefix = model.score(TOKENS, "prefix", prefix_lengths=prefix_lengths)
    causal = model.score(TOKENS, "ar")
    logits = ops.convert_to_numpy(
        model({"token_ids": TOKENS, "prefix_lengths": prefix_lengths}, mode="prefix")
    )
    log_probabilities = log_softmax(logits)
    for row, prefix_length in enumerate(prefix_lengths):
        targets = [j for j in range(prefix_length, TOKENS.shape[1]) if TOKENS[row, j] > 4]
        expected = -sum(log_probabilities[row, j - 1, TOKENS[row, j]] for j in targets)
        np.testing.assert_allclose(prefix["nll"][row], expected, rtol=1e-5)
        assert prefix["num_tokens"][row] == len(targets)
    # Same targets, different attention: the numbers must differ.
    restricted = model.score(TOKENS, "ar", target_mask=_after(prefix_lengths))
    assert not np.allclose(prefix["nll"], restricted["nll"])
    assert causal["num_tokens"].sum() > prefix["num_tokens"].sum()


def _after(prefix_lengths):
    mask = (np.arange(TOKENS.shape[1])[None] >= prefix_lengths[:, None]) & (TOKENS > 4)
    return mask


def test_prefix_scoring_refuses_targets_inside_the_prefix(model):
    with pytest.raises(ValueError, match="inside the bidirectional prefix"):
        model.score(
            TOKENS, "prefix", prefix_lengths=np.array([4, 3]), target_mask=TOKENS > 4
        )


def test_stratified_mask_counts_are_uniform_over_one_to_n():
    counts = ops.convert_to_numpy(stratified_mask_counts(np.array([5, 3]), np.array([9000, 1]), 5))
    assert sorted(counts[:, 0].tolist()) == [1, 2, 3, 4, 5]
    assert sorted(counts[:, 1].tolist()) == [1, 1, 2, 2, 3]
    # Over all offsets v = bits / 2^16, k is uniform on 1..n in every stratum together.
    bits = np.arange(0, 2**16, 64)
    many = ops.convert_to_numpy(stratified_mask_counts(np.full(len(bits), 7), bits, 3))
    assert np.bincount(many.reshape(-1)).tolist() == [0] + [3 * len(bits) // 7] * 7 or (
        np.ptp(np.bincount(many.reshape(-1))[1:]) <= 3
    )


def test_md_bound_of_a_fixed_logits_model_matches_the_closed_form(fixed):
    model, cross_entropy = fixed
    targets = TOKENS > 4
    # Context-free predictions make the bound tight: E[(n/k) Σ_masked CE] = Σ CE.
    closed_form = (cross_entropy[TOKENS] * targets).sum(axis=1)
    np.testing.assert_allclose(model.score(TOKENS)["nll"], closed_form, rtol=1e-4)
    few = model.score(TOKENS, "md", num_samples=4, seed=0)
    many = model.score(TOKENS, "md", num_samples=64, seed=0)
    for estimate in (few, many):
        error = np.abs(estimate["nll"] - closed_form)
        assert (error <= 4 * estimate["standard_error"] + 1e-3).all()
    # 16 times the samples: a quarter of the error in expectation; one draw of a
    # 4-sample standard deviation is noisy, so only the order is asserted.
    assert (many["standard_error"] < few["standard_error"]).all()
    assert (few["standard_error"] > 0).all()


def test_md_bound_is_exact_when_every_target_costs_the_same(fixed):
    model, cross_entropy = fixed
    token_ids = np.array([[1, 9, 9, 9, 9, 9, 9]], "int32")
    result = model.score(token_ids, "md", num_samples=8, seed=1)
    np.testing.assert_allclose(result["nll"], [6 * cross_entropy[9]], rtol=1e-4)
    np.testing.assert_allclose(result["standard_error"], [0.0], atol=1e-4)


def test_md_bound_with_two_targets_matches_its_enumerated_closed_form(model):
    token_ids = np.array([[1, 9, 14, 20]], "int32")
    targets = np.array([[False, False, True, True]])

    def cross_entropy_with(masked):
        inputs = np.where(masked, MASK, token_ids)
        logits = ops.convert_to_numpy(model.logits(inputs, np.zeros_like(inputs), np.array([4])))
        return -log_softmax(logits)[0, np.arange(3), token_ids[0, 1:]]  # token j from j-1

    only_2 = cross_entropy_with(np.array([[0, 0, 1, 0]], bool))[1]
    only_3 = cross_entropy_with(np.array([[0, 0, 0, 1]], bool))[2]
    both = cross_entropy_with(np.array([[0, 0, 1, 1]], bool))[1:].sum()
    # k = 1 (prob 1/2): either target masked, weight n/k = 2; k = 2 (prob 1/2): weight 1.
    closed_form = 0.5 * (0.5 * 2 * only_2 + 0.5 * 2 * only_3) + 0.5 * both
    result = model.score(token_ids, "md", target_mask=targets, num_samples=40, seed=0)
    assert abs(result["nll"][0] - closed_form) <= 4 * result["standard_error"][0]
    assert result["standard_error"][0] < 0.1 * closed_form


def test_md_bound_is_reproducible_and_seeded(model):
    def bound(seed, num_samples=3):
        return model.score(TOKENS, "md", target_mask=TOKENS > 4, num_samples=num_samples, seed=seed)

    first, again, other = bound(5), bound(5), bound(6)
    np.testing.assert_array_equal(first["nll"], again["nll"])
    assert not np.allclose(first["nll"], other["nll"])
    assert np.isnan(bound(0, num_samples=1)["standard_error"]).all()


def test_language_modeling_totals_of_a_fixed_logits_model(fixed):
    model, cross_entropy = fixed
    stream = np.array([1, 7, 9, 12, 30, 8, 8, 21, 5, 9, 10, 11, 12], "int32")
    token_ids, document_ids = token_rows(stream, sequence_length=5, pad_token_id=3)
    assert token_ids.shape == (3, 5) and document_ids[-1].tolist() == [0, 0, 0, 1, 1]

    def score_fn(rows, mode, document_ids=None, batch_index=None):
        options = {"num_samples": 4, "seed": batch_index} if mode == "md" else {}
        return model.score(rows, mode, document_ids=document_ids, **options)

    results = evaluate_language_modeling(score_fn, token_ids, document_ids, batch_size=2)
    # Every row's first token is context only; the padding is never scored.
    scored = np.concatenate([row[1:][row[1:] > 4] for row in token_ids])
    expected = cross_entropy[scored].mean()
    assert results["ar"]["num_tokens"] == results["md"]["num_tokens"] == len(scored)
    assert results["ar"]["perplexity"] == pytest.approx(math.exp(expected), rel=1e-4)
    assert results["md"]["nll_per_token"] == pytest.approx(
        expected, abs=4 * results["md"]["standard_error"] + 1e-4
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "elbo"}, "'elbo'"),
        ({"mode": "ar", "num_samples": 4}, "mode='md'"),
        ({"mode": "prefix"}, "prefix_lengths"),
        ({"mode": "ar", "prefix_lengths": [1, 1]}, "prefix_lengths"),
        ({"mode": "md", "num_samples": 0}, "num_samples"),
        ({"mode": "ar", "target_mask": np.ones((2, 3), bool)}, "shape"),
        ({"mode": "ar", "target_mask": np.ones(TOKENS.shape, bool)}, "position 0"),
    ],
)
def test_bad_scoring_input_raises_a_clear_error(model, options, message):
    options = dict(options)
    with pytest.raises(ValueError, match=message):
        model.score(TOKENS, options.pop("mode"), **options)


def test_scoring_beyond_max_sequence_length_is_refused(model):
    with pytest.raises(ValueError, match="max_sequence_length of 32"):
        model.score(np.ones((1, 33), "int32"))
