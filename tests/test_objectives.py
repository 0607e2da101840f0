"""The objectives' pure functions against NumPy re-computations of their formulas."""

import numpy as np
import pytest
from keras import ops

from keras_dualobj import objectives
from keras_dualobj.objectives.masking import MASK_FRACTION_EPSILON

VOCAB = 11


def _np(x):
    return ops.convert_to_numpy(x)


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, VOCAB, size=(3, 9)).astype("int32")
    token_ids[:, 0] = 1
    token_ids[1, 4] = 1  # second document of row 1 starts with <s>
    token_ids[2, 7:] = 3  # padding at the end of row 2
    document_ids = np.zeros_like(token_ids)
    document_ids[1, 4:] = 1
    logits = rng.normal(size=(3, 9, VOCAB)).astype("float32")
    return token_ids, document_ids, logits


def test_token_cross_entropy_matches_numpy(batch):
    _, _, logits = batch
    targets = np.random.default_rng(1).integers(0, VOCAB, size=logits.shape[:2])
    expected = -np.take_along_axis(_log_softmax(logits), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(
        _np(objectives.token_cross_entropy(logits, targets)), expected, rtol=1e-5
    )


def test_position_terms_match_numpy_in_both_alignments(batch):
    from keras_dualobj.objectives.losses import position_terms

    token_ids, _, logits = batch
    terms = position_terms(logits, token_ids, ("shifted", "unshifted"))
    log_softmax = _log_softmax(logits.astype("float64"))
    np.testing.assert_allclose(_np(terms["log_normalizer"]),
                               np.log(np.exp(logits.astype("float64")).sum(-1)), rtol=1e-5)
    # Position i holds token i + 1's cross-entropy (shifted) or token i's (unshifted).
    for alignment, targets, positions in (("shifted", token_ids[:, 1:], slice(0, -1)),
                                          ("unshifted", token_ids, slice(None))):
        expected = -np.take_along_axis(log_softmax[:, positions], targets[..., None], -1)[..., 0]
        np.testing.assert_allclose(_np(terms[alignment]["cross_entropy"])[:, positions],
                                   expected, rtol=1e-5)
        np.testing.assert_array_equal(_np(terms[alignment]["correct"])[:, positions],
                                      logits[:, positions].argmax(-1) == targets)


def test_next_token_targets_respect_documents_and_padding(batch):
    token_ids, document_ids, _ = batch
    targets = _np(objectives.next_token_targets(token_ids, document_ids, (3,)))
    expected = np.zeros_like(token_ids, dtype=bool)
    for b in range(3):
        for j in range(1, 9):
            expected[b, j] = document_ids[b, j] == document_ids[b, j - 1] and token_ids[b, j] != 3
    np.testing.assert_array_equal(targets, expected)
    assert not targets[1, 4] and targets[1, 5]


def test_ar_loss_matches_numpy(batch):
    token_ids, document_ids, logits = batch
    log_probs = _log_softmax(logits)
    losses = []
    for b in range(3):
        for j in range(1, 9):
            if document_ids[b, j] == document_ids[b, j - 1] and token_ids[b, j] != 3:
                losses.append(-log_probs[b, j - 1, token_ids[b, j]])
    loss = objectives.ar_loss(token_ids, logits, document_ids, pad_token_id=3)
    np.testing.assert_allclose(_np(loss), np.mean(losses), rtol=1e-5)


def test_ar_loss_row_mask_scores_only_those_rows(batch):
    token_ids, _, logits = batch
    row_mask = np.array([False, True, False])
    masked = objectives.ar_loss(token_ids, logits, row_mask=row_mask)
    alone = objectives.ar_loss(token_ids[1:2], logits[1:2])
    np.testing.assert_allclose(_np(masked), _np(alone), rtol=1e-6)


@pytest.mark.parametrize("shifted", [True, False])
def test_md_loss_matches_numpy(batch, shifted):
    token_ids, document_ids, logits = batch
    rng = np.random.default_rng(2)
    maskable = _np(
        objectives.maskable_positions(token_ids, document_ids, (1, 2, 3, 4), shifted)
    )
    masked = maskable & (rng.random(maskable.shape) < 0.5)
    t_hat = rng.uniform(0.2, 1.0, size=3).astype("float32")
    row_mask = np.array([True, True, False])
    log_probs = _log_softmax(logits)
    total, normaliser = 0.0, 0.0
    for b in range(2):
        normaliser += maskable[b].sum()
        for j in range(9):
            if masked[b, j]:
                source = j - 1 if shifted else j
                total += -log_probs[b, source, token_ids[b, j]] / t_hat[b]
    loss = objectives.md_loss(
        token_ids, logits, masked, t_hat, maskable, shifted=shifted, row_mask=row_mask
    )
    np.testing.assert_allclose(_np(loss), total / normaliser, rtol=1e-5)


def test_maskable_positions_never_include_special_tokens(batch):
    token_ids, document_ids, _ = batch
    for shifted in (True, False):
        maskable = _np(
            objectives.maskable_positions(token_ids, document_ids, (1, 2, 3, 4), shifted)
        )
        assert not maskable[np.isin(token_ids, (1, 2, 3, 4))].any()
    shifted_maskable = _np(objectives.maskable_positions(token_ids, None, (1,), True))
    assert not shifted_maskable[:, 0].any()


def test_z_loss_and_accuracy_match_numpy(batch):
    token_ids, _, logits = batch
    positions = np.random.default_rng(3).random(token_ids.shape) < 0.6
    positions[:, 0] = False
    lse = np.log(np.exp(logits.astype("float64")).sum(-1))
    expected_z = (lse[:, :-1] ** 2)[positions[:, 1:]].mean()
    np.testing.assert_allclose(
        _np(objectives.z_loss(logits, positions)), expected_z, rtol=1e-5
    )
    correct = logits[:, :-1].argmax(-1) == token_ids[:, 1:]
    np.testing.assert_allclose(
        _np(objectives.token_accuracy(logits, token_ids, positions)),
        correct[positions[:, 1:]].mean(),
        rtol=1e-6,
    )


def test_sample_masked_positions_follows_the_reference_rule():
    rng = np.random.default_rng(4)
    maskable = rng.random((64, 20)) < 0.7
    maskable[0] = False  # a row with nothing to mask
    mask_rate = rng.random(64).astype("float32")
    masked, t_hat = objectives.sample_masked_positions(maskable, seed=7, mask_rate=mask_rate)
    masked, t_hat = _np(masked), _np(t_hat)
    assert not (masked & ~maskable).any()
    n = maskable.sum(1)
    k = masked.sum(1)
    low = np.clip(np.floor(n * mask_rate), 1, n)
    high = np.clip(np.floor(n * mask_rate) + 1, 1, n)
    assert ((k >= low) & (k <= high))[1:].all()
    assert k[0] == 0
    eps = MASK_FRACTION_EPSILON
    expected_t_hat = (1 - eps) * np.divide(k, n, out=np.zeros(64), where=n > 0) + eps
    np.testing.assert_allclose(t_hat, expected_t_hat, rtol=1e-6)


def test_sample_masked_positions_rate_is_uniform_on_average():
    maskable = np.ones((2000, 32), dtype=bool)
    masked, t_hat = objectives.sample_masked_positions(maskable, seed=11)
    fraction = _np(masked).mean(1)
    assert abs(fraction.mean() - 0.5) < 0.03
    assert fraction.min() >= 1 / 32  # at least one masked token per row
    np.testing.assert_allclose(_np(t_hat), (1 - 1e-4) * fraction + 1e-4, rtol=1e-5)


@pytest.mark.parametrize("ar_fraction, batch_size", [(0.5, 8), (0.3, 5), (1.0, 6), (0.0, 6)])
def test_sample_ar_rows_has_the_expected_share(ar_fraction, batch_size):
    counts = []
    for seed in range(200):
        rows = _np(objectives.sample_ar_rows(batch_size, ar_fraction, seed=seed))
        counts.append(rows.sum())
    counts = np.array(counts)
    expected = ar_fraction * batch_size
    assert set(counts) <= {np.floor(expected), np.ceil(expected)}
    assert abs(counts.mean() - expected) < 0.12


def test_exact_bound_masking_draws_k_uniformly_with_weight_n_over_k():
    maskable = np.ones((4000, 8), dtype=bool)
    masked, t_hat = objectives.sample_masked_positions(maskable, seed=5, exact_bound=True)
    k = _np(masked).sum(1)
    counts = np.bincount(k, minlength=9)[1:]
    np.testing.assert_allclose(counts / k.size, np.full(8, 1 / 8), atol=0.02)
    np.testing.assert_allclose(_np(t_hat), k / 8, rtol=1e-6)
    # The training rule gives k = 1 and k = n the weights 1.5/n and 0.5/n.
    masked, _ = objectives.sample_masked_positions(maskable, seed=5)
    training_counts = np.bincount(_np(masked).sum(1), minlength=9)[1:] / k.size
    assert abs(training_counts[0] - 1.5 / 8) < 0.02 and abs(training_counts[-1] - 0.5 / 8) < 0.02
