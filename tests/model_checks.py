"""keras-hub-style checks that every model-level test calls instead of rebuilding its own.

As keras-hub's `TestCase.run_backbone_test` / `run_task_test`: one place says what every
backbone and every task must do (shapes, config round trip, saving round trip, the
attention modes), so a test about one option calls the check with that option and adds
only what is particular to it.
"""

import keras
import numpy as np

from keras_dualobj import DualLM


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def backbone_inputs(token_ids, prefix_lengths=None):
    """The backbone's input dict for `token_ids` (one document per row)."""
    batch_size, length = token_ids.shape
    if prefix_lengths is None:
        prefix_lengths = np.linspace(0, length, batch_size).astype("int32")
    return {
        "token_ids": token_ids,
        "document_ids": np.zeros_like(token_ids),
        "prefix_lengths": np.asarray(prefix_lengths, "int32"),
    }


def run_backbone_test(backbone, inputs, tmp_path, atol=1e-6):
    """Checks a `DualBackbone` and returns it restored from a `.keras` file.

    - the output is `[batch, length, hidden_dim]`, also for shorter inputs;
    - `from_config(get_config())` rebuilds the same architecture: same config, same
      weight shapes, the same outputs once given the same weights;
    - a `.keras` save and load keeps the config and the outputs.
    """
    outputs = to_numpy(backbone(inputs))
    batch_size, length = inputs["token_ids"].shape
    assert outputs.shape == (batch_size, length, backbone.hidden_dim)
    assert np.isfinite(outputs).all()
    shorter = {
        "token_ids": inputs["token_ids"][:, :3],
        "document_ids": inputs["document_ids"][:, :3],
        "prefix_lengths": np.minimum(inputs["prefix_lengths"], 3),
    }
    assert tuple(backbone(shorter).shape) == (batch_size, 3, backbone.hidden_dim)

    config = backbone.get_config()
    clone = type(backbone).from_config(config)
    assert clone.get_config() == config
    assert [w.shape for w in clone.weights] == [w.shape for w in backbone.weights]
    clone.set_weights(backbone.get_weights())
    np.testing.assert_allclose(to_numpy(clone(inputs)), outputs, atol=atol)

    path = tmp_path / "backbone.keras"
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(backbone)
    assert restored.get_config() == config
    np.testing.assert_allclose(to_numpy(restored(inputs)), outputs, atol=atol)
    return restored


def run_task_test(model, token_ids, tmp_path, batch_size=4, atol=1e-6):
    """Checks a compiled `DualLM` on `token_ids` and returns it restored from `.keras`.

    - `fit` for one epoch logs a finite loss and one loss per objective it trains;
    - the three attention modes give `[batch, length, vocabulary]` logits, and the
      causal ones do not depend on later tokens while the bidirectional ones do;
    - a `.keras` save and load keeps the config, the logits in every mode and
      `evaluate`'s held-out losses.
    """
    history = model.fit(token_ids, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    objectives = {"ar_loss"} if model.ar_fraction > 0 else set()
    objectives |= {"md_loss"} if model.ar_fraction < 1 else set()
    assert objectives <= set(history.history), history.history.keys()

    vocabulary_size = model.backbone.vocabulary_size
    inputs = backbone_inputs(token_ids)
    logits = {
        "ar": to_numpy(model(token_ids, mode="ar")),
        "md": to_numpy(model(token_ids, mode="md")),
        "prefix": to_numpy(model(inputs, mode="prefix")),
    }
    for mode, values in logits.items():
        assert values.shape == (*token_ids.shape, vocabulary_size), mode
    changed = token_ids.copy()
    changed[:, -1] = np.where(token_ids[:, -1] == 5, 6, 5)
    np.testing.assert_allclose(
        to_numpy(model(changed, mode="ar"))[:, :-1], logits["ar"][:, :-1], atol=1e-5
    )
    assert not np.allclose(to_numpy(model(changed, mode="md"))[:, 0], logits["md"][:, 0])

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DualLM)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(to_numpy(restored(token_ids, mode="ar")), logits["ar"], atol=atol)
    np.testing.assert_allclose(to_numpy(restored(token_ids, mode="md")), logits["md"], atol=atol)
    np.testing.assert_allclose(
        to_numpy(restored(inputs, mode="prefix")), logits["prefix"], atol=atol
    )
    np.testing.assert_allclose(
        restored.evaluate(token_ids, batch_size=batch_size, verbose=0),
        model.evaluate(token_ids, batch_size=batch_size, verbose=0),
        rtol=1e-5,
    )
    return restored
