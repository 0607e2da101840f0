"""The exact likelihood of a decoder (DUEL): brute force sums to one, NumPy re-computation."""

import itertools

import keras
import numpy as np
import pytest

from keras_dualobj import DualLM
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from keras_dualobj.decoders import SpeculativeDecoder

from conftest import tiny_backbone

MASK = 4
VOCABULARY_SIZE = 8
CONTEXT = [1, 5]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    backbone = tiny_backbone(vocabulary_size=VOCABULARY_SIZE, max_sequence_length=8)
    # Larger weights than at initialisation: confident, unequal proposals, so the
    # confidence order really depends on the canvas.
    for variable in backbone.trainable_variables:
        variable.assign(variable.numpy() * 4.0)
    return DualLM(backbone)


def every_continuation(length, exclude=(MASK,)):
    tokens = [t for t in range(VOCABULARY_SIZE) if t not in exclude]
    return [list(c) for c in itertools.product(tokens, repeat=length)]


@pytest.mark.parametrize(
    "decoder",
    [
        MDDecoder(temperature=0.0),  # one token per step, left to right
        MDDecoder(block_length=3),  # the most confident first, in any order
        MDDecoder(num_steps=2, block_length=3),  # two, then one
        MDDecoder(threshold=0.3),  # every position above 0.3, at least one
    ],
    ids=["left-to-right", "confidence", "two-then-one", "threshold"],
)
def test_the_likelihoods_of_every_continuation_sum_to_one(model, decoder):
    continuations = every_continuation(3)
    log_likelihood = decoder.log_likelihood(model, [CONTEXT] * len(continuations), continuations)
    assert log_likelihood.shape == (len(continuations),) and (log_likelihood < 0).all()
    np.testing.assert_allclose(np.exp(log_likelihood).sum(), 1.0, rtol=1e-4)


def test_the_ar_decoders_score_the_ar_face_and_sum_to_one(model):
    continuations = every_continuation(2, exclude=())
    contexts = [CONTEXT] * len(continuations)
    ar = ARDecoder().log_likelihood(model, contexts, continuations)
    np.testing.assert_allclose(np.exp(ar).sum(), 1.0, rtol=1e-4)
    np.testing.assert_allclose(SpeculativeDecoder().log_likelihood(model, contexts, continuations), ar)
    token_ids = np.array([CONTEXT + continuations[17]])
    logits = keras.ops.convert_to_numpy(model(token_ids)).astype("float64")[0]
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = log_probabilities[1, continuations[17][0]] + log_probabilities[2, continuations[17][1]]
    np.testing.assert_allclose(ar[17], expected, rtol=1e-5)


def test_left_to_right_equals_a_numpy_recomputation(model):
    continuation = [6, 0, 7]
    expected = 0.0
    for i, token in enumerate(continuation):
        canvas = np.array([CONTEXT + continuation[:i] + [MASK] * (len(continuation) - i)])
        logits = keras.ops.convert_to_numpy(
            model.logits(canvas, np.zeros_like(canvas), np.full((1,), canvas.shape[1]))
        ).astype("float64")[0]
        # Shifted MD: the token at j is read from the logits at j - 1; <mask> excluded.
        row = np.delete(logits[len(CONTEXT) + i - 1], MASK)
        log_probabilities = row - np.log(np.exp(row).sum())
        expected += log_probabilities[token - (token > MASK)]
    got = MDDecoder(temperature=0.0).log_likelihood(model, CONTEXT, continuation)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_left_to_right_is_the_l2r_pseudo_likelihood_without_the_mask_tokens_share(model):
    # score(mode="pll", mask_following=True) masks each target with every later one, the
    # chain rule along left-to-right unmasking, but keeps <mask> in the normaliser; the
    # decoder never draws <mask>, so its likelihood is higher by exactly that share.
    token_ids = np.array([CONTEXT + [6, 0, 7, 5], CONTEXT + [7, 7, 2, 6]])
    target_mask = np.arange(6)[None, :].repeat(2, 0) >= len(CONTEXT)
    pll = model.score(token_ids, "pll", target_mask=target_mask, mask_following=True)
    exact = MDDecoder(temperature=0.0).score_rows(model, token_ids, target_mask)
    mask_share = 0.0
    for i in range(len(CONTEXT), 6):
        canvas = np.where(np.arange(6) >= i, MASK, token_ids)
        logits = keras.ops.convert_to_numpy(
            model.logits(canvas, np.zeros_like(canvas), np.full((2,), 6))).astype("float64")
        probabilities = np.exp(logits[:, i - 1] - logits[:, i - 1].max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        mask_share = mask_share - np.log1p(-probabilities[:, MASK])
    np.testing.assert_allclose(exact["nll"], pll["nll"] - mask_share, rtol=1e-5)
    assert (mask_share > 1e-3).all()  # the difference is real, not rounding


def test_rows_of_different_lengths_score_as_they_do_alone(model):
    decoder = MDDecoder(block_length=2, temperature=0.0)
    batch = decoder.log_likelihood(model, [CONTEXT, [1]], [[6, 7], [5, 6, 7, 0]])
    alone = [decoder.log_likelihood(model, CONTEXT, [6, 7]),
             decoder.log_likelihood(model, [1], [5, 6, 7, 0])]
    np.testing.assert_allclose(batch, alone, rtol=1e-5)


@pytest.mark.parametrize(
    "decoder, context, continuation, message",
    [
        (MDDecoder(remasking="random"), CONTEXT, [6], "remasking='confidence'"),
        (MDDecoder(prefix_cache=True), CONTEXT, [6], "prefix_cache=False"),
        (MDDecoder(), [CONTEXT, CONTEXT], [[6]], "same kind and count"),
        (MDDecoder(), CONTEXT, [9], "token id 9"),
    ],
)
def test_what_has_no_exact_likelihood_is_refused(model, decoder, context, continuation, message):
    with pytest.raises(ValueError, match=message):
        decoder.log_likelihood(model, context, continuation)
