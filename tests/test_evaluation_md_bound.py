"""The one MD-bound estimator and the pseudo-log-likelihood, against NumPy recomputations.

The masks are recomputed here in NumPy from the documented hash (exact int32
arithmetic), so the same test on each backend checks that every backend draws the
same masks; the values are recomputed from the model's logits with a NumPy
log-softmax. Batch 1 equals batch 8, and `evaluate()` equals `score(mode="md")`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.evaluation import pseudo_log_likelihood
from keras_dualobj.evaluation.md_bound import md_bound_masks
from keras_dualobj.objectives.masking import next_token_targets

from conftest import tiny_backbone

MASK = 4
SPECIAL = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    backbone = tiny_backbone(
        vocabulary_size=40, hidden_dim=16, intermediate_dim=32, max_sequence_length=24,
    )
    model = DualLM(backbone, elbo_samples=3, elbo_seed=11)
    model.compile()
    return model


@pytest.fixture(scope="module")
def rows():
    """Eight rows of different lengths, right-padded with `<pad>` (3) in document 1."""
    rng = np.random.default_rng(0)
    token_ids = np.full((8, 16), 3, "int32")
    document_ids = np.ones((8, 16), "int32")
    for row, length in enumerate([16, 5, 9, 12, 3, 16, 7, 10]):
        token_ids[row, 0] = 1
        token_ids[row, 1:length] = rng.integers(5, 40, length - 1)
        document_ids[row, :length] = 0
    return token_ids, document_ids


# --- NumPy recomputation of the documented hash and masks ------------------------


def np_hash(x):
    x = np.atleast_1d(np.asarray(x).astype(np.uint32))
    x ^= x >> np.uint32(16)
    x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
    return x ^ (x >> np.uint32(16))


def np_masks(token_ids, target_mask, num_samples, seed):
    token_ids = token_ids.astype(np.uint32)
    targets = target_mask.astype(np.uint32)
    batch_size, length = token_ids.shape
    positions = np.arange(length, dtype=np.uint32)
    content = np_hash(np_hash(token_ids * np.uint32(2) + targets) ^ np_hash(positions)[None])
    last = np.array([np.flatnonzero(row).max() if row.any() else -1 for row in target_mask])
    upto = positions[None, :].astype(int) <= last[:, None]
    low = np.where(upto, content & np.uint32(0xFFFF), 0).sum(1).astype(np.uint32)
    high = np.where(upto, content >> np.uint32(16), 0).sum(1).astype(np.uint32)
    key = np_hash(high ^ np_hash(np.uint32(seed)))
    keys = np_hash(low + key * np.uint32(3))
    golden = np.uint32(0x9E3779B9)
    offset_bits = (np_hash(keys ^ golden) >> np.uint32(16)).astype(np.int64)
    num_scored = target_mask.sum(1)
    masked = np.zeros((num_samples, batch_size, length), bool)
    counts = np.zeros((num_samples, batch_size), int)
    for s in range(num_samples):
        sample_keys = np_hash(keys + np.uint32(s * 0x9E3779B9 % 2**32))
        scores = (np_hash(sample_keys[:, None] + positions[None]) >> np.uint32(16)).astype(
            np.int64
        ) * 2**15 + positions
        for b in range(batch_size):
            n = int(num_scored[b])
            k = 0 if n == 0 else 1 + (n * s + ((n * int(offset_bits[b])) >> 16)) // num_samples
            counts[s, b] = k
            order = [j for j in np.argsort(scores[b]) if target_mask[b, j]]
            masked[s, b, order[:k]] = True
    return masked, counts


def log_softmax(logits):
    logits = np.asarray(logits, "float64")
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_cross_entropy(model, inputs, token_ids, document_ids):
    """`CE[r, j] = -log q(x_j)` read from the logits at `j - 1`, bidirectional."""
    prefix = np.full((len(inputs),), inputs.shape[1], "int32")
    logits = ops.convert_to_numpy(model.logits(inputs, document_ids, prefix))
    picked = -np.take_along_axis(log_softmax(logits)[:, :-1], token_ids[:, 1:, None], -1)
    return np.pad(picked[..., 0], ((0, 0), (1, 0)))


def targets_of(token_ids, document_ids):
    return ops.convert_to_numpy(next_token_targets(token_ids, document_ids, SPECIAL))


# --- Tests ------------------------------------------------------------------------


def test_masks_equal_the_numpy_recomputation_of_the_documented_hash(rows):
    token_ids, document_ids = rows
    targets = targets_of(token_ids, document_ids)
    masked, counts = md_bound_masks(token_ids, targets, 5, seed=3)
    expected_masked, expected_counts = np_masks(token_ids, targets, 5, 3)
    np.testing.assert_array_equal(ops.convert_to_numpy(counts), expected_counts.reshape(-1))
    np.testing.assert_array_equal(ops.convert_to_numpy(masked), expected_masked.reshape(40, 16))
    assert (expected_masked.sum(-1) == expected_counts).all()
    assert not (expected_masked & ~targets[None]).any()


def test_md_score_equals_the_numpy_recomputation_of_the_estimator(model, rows):
    token_ids, document_ids = rows
    targets = targets_of(token_ids, document_ids)
    num_samples, seed = 4, 2
    result = model.score(
        token_ids, "md", document_ids=document_ids, num_samples=num_samples, seed=seed
    )
    masked, counts = np_masks(token_ids, targets, num_samples, seed)
    values = np.zeros((num_samples, len(token_ids)))
    for s in range(num_samples):
        inputs = np.where(masked[s], MASK, token_ids).astype("int32")
        cross_entropy = np_cross_entropy(model, inputs, token_ids, document_ids)
        values[s] = targets.sum(1) / counts[s] * (cross_entropy * masked[s]).sum(1)
    np.testing.assert_allclose(result["nll"], values.mean(0), rtol=1e-4)
    np.testing.assert_allclose(
        result["standard_error"], values.std(0, ddof=1) / 2, rtol=1e-3, atol=1e-5
    )
    np.testing.assert_array_equal(result["num_tokens"], targets.sum(1))


def test_batch_of_one_equals_batch_of_eight_whatever_the_padding(model, rows):
    token_ids, document_ids = rows
    together = model.score(token_ids, "md", document_ids=document_ids, num_samples=3, seed=1)
    for row in (1, 6):
        length = int((document_ids[row] == 0).sum())
        alone = model.score(token_ids[row : row + 1, :length], "md", num_samples=3, seed=1)
        np.testing.assert_allclose(alone["nll"], together["nll"][row : row + 1], rtol=1e-5)
        np.testing.assert_allclose(
            alone["standard_error"], together["standard_error"][row : row + 1], rtol=1e-4
        )


def test_evaluate_reports_the_same_estimate_as_score_for_any_batch_size(model, rows):
    token_ids, document_ids = rows
    inputs = {"token_ids": token_ids, "document_ids": document_ids}
    scored = model.score(token_ids, "md", document_ids=document_ids, num_samples=3, seed=11)
    per_token = scored["nll"].sum() / scored["num_tokens"].sum()
    logs = [
        model.evaluate(inputs, batch_size=size, verbose=0, return_dict=True)
        for size in (2, 8)
    ]
    assert logs[0]["md_loss"] == pytest.approx(per_token, rel=1e-5)
    assert logs[1]["md_loss"] == pytest.approx(per_token, rel=1e-5)
    assert 0.0 <= logs[0]["md_accuracy"] <= 1.0


def test_pseudo_log_likelihood_equals_one_masked_position_at_a_time(model, rows):
    token_ids, document_ids = rows[0][:3], rows[1][:3]
    targets = targets_of(token_ids, document_ids)
    copies, positions = np.nonzero(targets)
    inputs = token_ids[copies].copy()
    inputs[np.arange(len(copies)), positions] = MASK
    cross_entropy = np_cross_entropy(model, inputs, token_ids[copies], document_ids[copies])
    picked = cross_entropy[np.arange(len(copies)), positions]
    expected = np.bincount(copies, weights=picked, minlength=3)
    result = model.score(token_ids, "pll", document_ids=document_ids)
    np.testing.assert_allclose(result["nll"], expected, rtol=1e-4)
    assert (result["standard_error"] == 0).all()
    small_batches = pseudo_log_likelihood(
        model.logits, token_ids, targets, MASK, document_ids=document_ids, batch_size=20
    )
    np.testing.assert_allclose(small_batches["nll"], expected, rtol=1e-4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**31}, "2\\^31"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_md_options_raise_clear_errors(model, rows, options, message):
    with pytest.raises(ValueError, match=message):
        model.score(rows[0], "md", **options)
