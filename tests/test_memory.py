"""Nothing stays behind a trained model: a study of many cells in one process stays flat.

Issue 16 part 5. The TensorFlow study used to grow by ~35 MB per cell: `tf.nn.silu`
wraps its gradient in `tf.custom_gradient`, which, traced into each `fit()` step graph,
registers a gradient function in TensorFlow's process-wide registry that is never
removed and keeps the whole step graph alive. These tests check the mechanism, not
RSS (which is noisy): after a model is trained, deleted and the session cleared, the
model itself is collected on every backend, and on TensorFlow no traced graph and no
new gradient-registry entry survives it. `benchmarks/study_memory.py` measures RSS.
"""

import gc
import weakref

import keras
import numpy as np
import pytest

from keras_dualobj import DualLM
from keras_dualobj.layers.swiglu import silu

from conftest import tiny_backbone


def train_and_forget(ar_fraction):
    """Builds, compiles and fits a tiny model; returns only a weak reference to it."""
    backbone = tiny_backbone(vocabulary_size=64, max_sequence_length=32)
    model = DualLM(backbone, ar_fraction=ar_fraction)
    model.compile(optimizer="adamw")
    rng = np.random.default_rng(0)
    batch = {
        "token_ids": rng.integers(16, 64, (8, 32)).astype("int32"),
        "document_ids": np.zeros((8, 32), "int32"),
    }
    model.fit(batch, batch_size=4, epochs=1, verbose=0)
    return weakref.ref(model)


def live_objects(type_name):
    """The live objects of a type, as weak references (other tests' may be alive too)."""
    return [weakref.ref(obj) for obj in gc.get_objects() if type(obj).__name__ == type_name]


def alive(references):
    return [reference for reference in references if reference() is not None]


def tensorflow_gradient_registry_size():
    from tensorflow.python.framework import ops as tf_ops

    return len(tf_ops._gradient_registry.list())


@pytest.fixture(scope="module")
def after_two_models():
    """Trains two tiny models one after the other, as a study's cells do."""
    keras.backend.clear_session()
    gc.collect()
    graphs_before = {id(r()) for r in alive(live_objects("FuncGraph"))}
    registry_before = (
        tensorflow_gradient_registry_size()
        if keras.backend.backend() == "tensorflow"
        else None
    )
    references = []
    for ar_fraction in (0.5, 1.0):
        references.append(train_and_forget(ar_fraction))
        keras.backend.clear_session()
        gc.collect()
    registry_after = (
        tensorflow_gradient_registry_size()
        if keras.backend.backend() == "tensorflow"
        else None
    )
    # Traced graphs still alive that did not exist before: the models' own.
    new_graphs = [
        r for r in alive(live_objects("FuncGraph")) if id(r()) not in graphs_before
    ]
    return references, registry_before, registry_after, len(new_graphs)


def test_trained_models_are_collected(after_two_models):
    references, _, _, _ = after_two_models
    assert [reference() is None for reference in references] == [True, True]


def test_no_traced_step_graph_outlives_its_model(after_two_models):
    references, registry_before, registry_after, new_graphs = after_two_models
    if keras.backend.backend() == "tensorflow":
        assert new_graphs == 0
        assert registry_after == registry_before
    else:
        # JAX and PyTorch keep no graph objects of their own; the model (checked
        # above) is what would hold the compiled step.
        assert new_graphs == 0 and [r() for r in references] == [None, None]


def test_silu_equals_keras_silu_and_the_formula():
    x = np.linspace(-6.0, 6.0, 25).astype("float32")
    expected = x / (1.0 + np.exp(-x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(silu(x)), expected, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(silu(x)),
        keras.ops.convert_to_numpy(keras.ops.silu(x)),
        atol=1e-6,
    )
