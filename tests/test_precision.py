"""Mixed precision through Keras dtype policies: `mixed_bfloat16` end to end.

Same weights (float32 variables in both) and batches: a few Muon steps under
`mixed_bfloat16` keep the training loss near float32's; both decodings run; the
saved model keeps its policy.
"""

import keras
import numpy as np
import pytest

from keras_dualobj.models import DualLM
from keras_dualobj.objectives.losses import ar_loss
from keras_dualobj.objectives.losses import md_loss
from keras_dualobj.training import RunSpec
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder

STEPS = 3
# bfloat16 has an 8-bit mantissa (relative error ~4e-3 per op); over a 2-layer
# model and 3 updates the mean loss (~4 nats) moves by a few hundredths at most.
LOSS_TOLERANCE = 0.05
SMALL = {"hidden_dim": 32, "num_heads": 2, "intermediate_dim": 48, "max_sequence_length": 16}


def _trained(precision, rows):
    spec = RunSpec(preset="tiny", precision=precision, ar_fraction=0.5, sequence_length=16,
                   batch_size=8, learning_rate=1e-2, backbone_overrides=SMALL).resolved()
    model = spec.build_model(vocabulary_size=272)
    spec.compile(model, total_steps=STEPS)
    history = model.fit(rows, batch_size=8, epochs=STEPS, shuffle=False, verbose=0)
    return model, history.history["loss"]


@pytest.fixture(scope="module")
def models():
    rows = np.random.default_rng(0).integers(16, 272, (8, 16)).astype("int32")
    return {precision: _trained(precision, rows) for precision in ("float32", "mixed_bfloat16")}


def test_bfloat16_loss_near_float32(models):
    float32_losses = models["float32"][1]
    bfloat16_losses = models["mixed_bfloat16"][1]
    np.testing.assert_allclose(bfloat16_losses, float32_losses, atol=LOSS_TOLERANCE)
    assert bfloat16_losses[-1] < bfloat16_losses[0]


def test_policy_reaches_the_layers_and_losses_stay_float32(models):
    model = models["mixed_bfloat16"][0]
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"
    assert all(variable.dtype == "float32" for variable in model.backbone.weights)
    rows = np.random.default_rng(1).integers(16, 272, (2, 16)).astype("int32")
    logits = model(rows)
    assert keras.backend.standardize_dtype(logits.dtype) == "bfloat16"
    # The losses of both objectives read the 16-bit logits and work in float32.
    masked = np.zeros((2, 16), bool)
    masked[:, 5:9] = True
    for loss in (
        ar_loss(rows, logits),
        md_loss(rows, logits, masked, np.full((2,), 0.125, "float32")),
    ):
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_decoding_runs_under_bfloat16(models):
    model = models["mixed_bfloat16"][0]
    prompt = np.array([[1, 40, 41, 42]], "int32")
    ar = model.generate(prompt, max_new_tokens=6, decoder=ARDecoder(seed=0))
    md = model.generate(prompt, max_new_tokens=6, decoder=MDDecoder(num_steps=3, seed=0))
    for output in (ar, md):
        output = np.asarray(output)
        assert output.shape[-1] == 10 and np.all((output >= 0) & (output < 272))


def test_saving_keeps_the_policy(models, tmp_path):
    model = models["mixed_bfloat16"][0]
    path = tmp_path / "bf16.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DualLM)
    assert restored.backbone.dtype_policy.name == "mixed_bfloat16"
    rows = np.random.default_rng(2).integers(16, 272, (1, 16)).astype("int32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(restored(rows), "float32")),
        keras.ops.convert_to_numpy(keras.ops.cast(model(rows), "float32")),
        atol=1e-2,
    )


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        RunSpec(preset="tiny", precision="int8").resolved().build_model(vocabulary_size=272)
    with pytest.raises(ValueError, match="accumulation_steps"):
        RunSpec(preset="tiny", batch_size=6, accumulation_steps=4).resolved().micro_batch_size
