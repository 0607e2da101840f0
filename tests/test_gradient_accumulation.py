"""Gradient accumulation: k micro-batches make the update of one k-times larger batch.

AR rows only (α = 1) and no padding, so every micro-batch scores the same number of
tokens and the mean of the micro-batch gradients is exactly the big batch's
gradient; the Muon + AdamW recipe, weight decay and clipping then act on it once.
"""

import keras
import numpy as np
import pytest

from keras_dualobj.models import DualLM
from keras_dualobj.training import build_optimizer
from keras_dualobj.optimization.optimizers import PerUpdateSchedule
from keras_dualobj.optimization.schedules import WarmupStableDecay

from conftest import tiny_backbone

MICRO_BATCHES = 2
UPDATES = 2
# float32 sums in another order (two halves, then the mean).
TOLERANCE = 2e-5


def _train(accumulation_steps, rows):
    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(vocabulary_size=64, intermediate_dim=48, max_sequence_length=2048)
    model = DualLM(backbone, ar_fraction=1.0, seed=0)
    model.compile(optimizer=build_optimizer(
        model, learning_rate=1e-2, total_steps=4, warmup_fraction=0.5, clip_norm=1.0,
        accumulation_steps=accumulation_steps,
    ))
    model.fit(rows, batch_size=len(rows) // (UPDATES * accumulation_steps), epochs=1,
              shuffle=False, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    rows = np.random.default_rng(0).integers(5, 64, (16, 16)).astype("int32")
    return _train(1, rows), _train(MICRO_BATCHES, rows)


def test_accumulated_micro_batches_equal_one_big_batch(trained):
    big, accumulated = trained
    differences = [
        float(np.max(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b))))
        for a, b in zip(big.trainable_weights, accumulated.trainable_weights)
    ]
    assert max(differences) <= TOLERANCE
    # The runs did move the weights (so equality means something).
    keras.utils.set_random_seed(0)
    fresh = tiny_backbone(vocabulary_size=64, intermediate_dim=48, max_sequence_length=2048)
    moved = np.max(np.abs(keras.ops.convert_to_numpy(fresh.weights[0])
                          - keras.ops.convert_to_numpy(big.backbone.weights[0])))
    assert moved > 1e-3


def test_schedule_and_counter_count_updates(trained):
    big, accumulated = trained
    assert int(big.optimizer.iterations) == UPDATES
    assert int(accumulated.optimizer.iterations) == UPDATES  # micro-batches // k
    np.testing.assert_allclose(
        float(accumulated.optimizer.learning_rate), float(big.optimizer.learning_rate),
        rtol=1e-6,
    )


def test_per_update_schedule_matches_numpy_and_round_trips():
    wsd = WarmupStableDecay(1.0, 8, warmup_fraction=0.25, decay_fraction=0.5)
    schedule = PerUpdateSchedule(wsd, 3)
    steps = np.arange(24)
    expected = [float(wsd(int(step) // 3)) for step in steps]
    np.testing.assert_allclose([float(schedule(int(s))) for s in steps], expected, rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored.accumulation_steps == 3 and float(restored(7)) == pytest.approx(expected[7])


def test_bad_accumulation_steps_are_refused():
    backbone = tiny_backbone(
        vocabulary_size=64, num_layers=1, intermediate_dim=48, max_sequence_length=2048,
    )
    model = DualLM(backbone)
    for bad in (0, -2, 1.5):
        with pytest.raises((ValueError, TypeError), match="accumulation_steps"):
            build_optimizer(model, accumulation_steps=bad)
