"""The optimiser recipe: WSD schedule values, Muon/AdamW assignment, update maths."""

import math

import keras
import numpy as np
import pytest

from keras_dualobj.models import DualLM
from keras_dualobj.training import MatrixMuon
from keras_dualobj.training import WarmupStableDecay
from keras_dualobj.training import build_optimizer
from keras_dualobj.training import muon_matrix_shapes
from keras_dualobj.training import warmup_stable_decay

from conftest import tiny_backbone


def numpy_wsd(step, peak, total, warmup, decay, shape, final):
    """The WSD formula, written independently in NumPy."""
    step = np.asarray(step, dtype=np.float64)
    warm = np.minimum(1.0, (step + 1) / warmup) if warmup else np.ones_like(step)
    progress = np.clip((step - (total - decay)) / decay, 0, 1) if decay else np.zeros_like(step)
    curve = {
        "linear": 1 - progress,
        "cosine": 0.5 * (1 + np.cos(np.pi * progress)),
        "1-sqrt": 1 - np.sqrt(progress),
    }[shape]
    return warm * (final + (peak - final) * curve)


def approx(value):
    # Schedules compute in float32.
    return pytest.approx(value, rel=1e-5, abs=1e-9)


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


# --- Warmup-stable-decay ------------------------------------------------------


def test_wsd_values_at_warmup_end_plateau_and_decay_end():
    schedule = WarmupStableDecay(
        7e-3, total_steps=1000, warmup_fraction=0.05, decay_fraction=0.25
    )
    assert (schedule.warmup_steps, schedule.decay_steps) == (50, 250)
    assert _lr(schedule, 0) == approx(7e-3 / 50)  # the first update moves
    assert _lr(schedule, 49) == approx(7e-3)  # warm-up end reaches the peak
    assert _lr(schedule, 50) == approx(7e-3)
    assert _lr(schedule, 500) == approx(7e-3)  # plateau
    assert _lr(schedule, 750) == approx(7e-3)  # decay starts here
    assert _lr(schedule, 875) == approx(3.5e-3)  # half-way down, linear
    assert _lr(schedule, 999) == approx(7e-3 / 250)  # last update
    assert _lr(schedule, 1000) == 0.0  # decay end
    assert _lr(schedule, 5000) == 0.0  # stays at the final value


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_matches_numpy_formula_at_every_step(shape):
    steps = np.arange(0, 121)
    actual = keras.ops.convert_to_numpy(
        warmup_stable_decay(
            steps, 2.0, total_steps=120, warmup_steps=12, decay_steps=30,
            decay_shape=shape, final_learning_rate=0.2,
        )
    )
    expected = numpy_wsd(steps, 2.0, 120, 12, 30, shape, 0.2)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    assert actual[-1] == pytest.approx(0.2)


def test_wsd_without_warmup_or_decay_is_constant():
    schedule = WarmupStableDecay(1e-3, total_steps=10, warmup_fraction=0.0, decay_fraction=0.0)
    assert [_lr(schedule, s) for s in (0, 5, 10)] == pytest.approx([1e-3] * 3)


def test_wsd_serialisation_round_trip():
    schedule = WarmupStableDecay(
        3e-3, total_steps=400, warmup_fraction=0.02, decay_fraction=0.3,
        decay_shape="cosine", final_learning_rate=1e-4,
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, WarmupStableDecay)
    assert restored.get_config() == schedule.get_config()
    for step in (0, 7, 200, 330, 400):
        assert _lr(restored, step) == pytest.approx(_lr(schedule, step))
    # Inside an optimizer config, as model.save() stores it.
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    rebuilt = keras.optimizers.AdamW.from_config(optimizer.get_config())
    assert isinstance(rebuilt._learning_rate, WarmupStableDecay)
    assert rebuilt._learning_rate.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decay_shape": "exponential"}, "decay_shape"),
        ({"warmup_fraction": 0.5, "decay_fraction": 0.6}, "overlap"),
        ({"warmup_fraction": 1.5}, "warmup_fraction"),
        ({"total_steps": 0}, "total_steps"),
        ({"peak_learning_rate": 0.0}, "peak_learning_rate"),
        ({"final_learning_rate": 1.0}, "final_learning_rate"),
    ],
)
def test_wsd_rejects_bad_arguments(kwargs, message):
    arguments = {"peak_learning_rate": 1e-3, "total_steps": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        WarmupStableDecay(**arguments)


# --- Which variables Muon trains ----------------------------------------------


@pytest.fixture
def tiny_model():
    backbone = tiny_backbone(vocabulary_size=64, intermediate_dim=48, max_sequence_length=2048)
    return DualLM(backbone, seed=0)


def test_muon_trains_exactly_the_attention_and_feed_forward_matrices(tiny_model):
    optimizer = build_optimizer(tiny_model, learning_rate=7e-3)
    optimizer.build(tiny_model.trainable_variables)
    muon = {v.path for v in tiny_model.trainable_variables if optimizer.uses_muon(v)}
    adamw = {v.path for v in tiny_model.trainable_variables if not optimizer.uses_muon(v)}
    expected_muon = {
        f"transformer_layer_{i}/{name}/kernel"
        for i in range(2)
        for name in (
            "attention/query", "attention/key", "attention/value",
            "attention/attention_output",
            "feed_forward/gate", "feed_forward/up", "feed_forward/down",
        )
    }
    expected_adamw = {"token_embedding/embeddings", "token_embedding/reverse_embeddings",
                      "final_norm/scale"} | {
        f"transformer_layer_{i}/{norm}/scale"
        for i in range(2)
        for norm in ("attention_norm", "feed_forward_norm")
    }
    assert muon == expected_muon
    assert adamw == expected_adamw
    # AdamW variables carry a second-moment velocity; Muon matrices only a momentum.
    velocities = {v.path for v in optimizer.variables if v.path.endswith("_velocity")}
    assert len(velocities) == len(expected_adamw)
    assert not any("attention_query" in path for path in velocities)
    shapes = muon_matrix_shapes(tiny_model)
    assert shapes["transformer_layer_0/attention/query/kernel"] == (32, 32)  # [d, heads*hd]
    assert shapes["transformer_layer_0/attention/attention_output/kernel"] == (32, 32)
    assert shapes["transformer_layer_1/feed_forward/down/kernel"] == (48, 32)


def test_stock_keras_muon_would_send_attention_kernels_to_adamw(tiny_model):
    # Why MatrixMuon exists: Keras' rule is "Muon iff 2-D", and our q/k/v/o are 3-D.
    query = tiny_model.backbone.transformer_layers[0].attention.query_dense.kernel
    assert len(query.shape) == 3
    assert keras.optimizers.Muon()._should_use_adamw(query)


def _newton_schulz_numpy(matrix, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.astype(np.float64)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


def test_one_update_matches_the_reference_kimi_muon_formulas(tiny_model):
    """Moonlight's `Muon.step` re-computed in NumPy for one step from zero state."""
    lr, wd, momentum, beta1, beta2, eps = 7e-3, 0.1, 0.95, 0.9, 0.95, 1e-8
    optimizer = build_optimizer(tiny_model, learning_rate=lr, weight_decay=wd)
    variables = tiny_model.trainable_variables
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=v.shape).astype("float32") for v in variables]
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.apply([keras.ops.convert_to_tensor(g) for g in gradients], variables)
    shapes = muon_matrix_shapes(tiny_model)
    checked = {"muon": 0, "adamw": 0}
    for variable, gradient, weight in zip(variables, gradients, before):
        decayed = weight * (1 - lr * wd)
        if variable.path in shapes:
            rows, cols = shapes[variable.path]
            buffer = gradient  # momentum buffer after one step from zero
            nesterov = gradient + momentum * buffer
            update = _newton_schulz_numpy(nesterov.reshape(rows, cols)).reshape(weight.shape)
            expected = decayed - lr * 0.2 * math.sqrt(max(rows, cols)) * update
            checked["muon"] += 1
        else:
            moment1 = (1 - beta1) * gradient
            moment2 = (1 - beta2) * gradient**2
            scale = (1 - beta1) / math.sqrt(1 - beta2)  # bias corrections, step 1
            expected = decayed - lr / scale * moment1 / (eps + np.sqrt(moment2))
            checked["adamw"] += 1
        actual = keras.ops.convert_to_numpy(variable)
        np.testing.assert_allclose(actual, expected, rtol=2e-4, atol=2e-6, err_msg=variable.path)
        assert not np.allclose(actual, weight)
    assert checked == {"muon": 14, "adamw": 7}


def test_adamw_alternative_and_gradient_clipping(tiny_model):
    optimizer = build_optimizer(
        tiny_model, optimizer="adamw", learning_rate=3e-3, total_steps=50, clip_norm=1.0
    )
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert not isinstance(optimizer, keras.optimizers.Muon)
    assert optimizer.global_clipnorm == 1.0
    assert optimizer.weight_decay == pytest.approx(0.1)
    assert optimizer.beta_2 == pytest.approx(0.95)
    assert isinstance(optimizer._learning_rate, WarmupStableDecay)
    muon = build_optimizer(tiny_model, clip_norm=0.5)
    assert muon.global_clipnorm == 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_build_optimizer_rejects_bad_arguments(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer(tiny_model, **kwargs)


def test_matrix_muon_rejects_unknown_variables_and_wrong_views(tiny_model):
    with pytest.raises(ValueError, match="does not train"):
        MatrixMuon({"no/such/kernel": (2, 2)}).build(tiny_model.trainable_variables)
    path = "transformer_layer_0/feed_forward/gate/kernel"
    with pytest.raises(ValueError, match="does not match its shape"):
        MatrixMuon({path: (16, 16)}).build(tiny_model.trainable_variables)
    with pytest.raises(ValueError, match="matrix_shapes"):
        MatrixMuon({})


def test_recipe_model_saves_and_loads_with_its_optimizer(tiny_model, tmp_path):
    tiny_model.compile(optimizer=build_optimizer(tiny_model, total_steps=20))
    token_ids = np.random.default_rng(1).integers(5, 64, (8, 16)).astype("int32")
    tiny_model.fit(token_ids, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    tiny_model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, MatrixMuon)
    assert loaded.optimizer.matrix_shapes == tiny_model.optimizer.matrix_shapes
    assert isinstance(loaded.optimizer._learning_rate, WarmupStableDecay)
    for a, b in zip(tiny_model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # The optimizer state (iteration count, momenta) comes back too.
    assert len(loaded.optimizer.variables) == len(tiny_model.optimizer.variables)
    for a, b in zip(tiny_model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
