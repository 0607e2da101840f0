"""keras-hub's own test harness (`keras_hub`'s `TestCase`) on `DualBackbone` (issue 25).

keras-hub checks every backbone it ships with these: config round trip, eager and
variable-length calls on `token_ids` + `padding_mask`, compiled `predict` on arrays and on
a tf.data dataset, the name, mixed precision, quantization, and a `.keras` round trip.
"""

import numpy as np
from keras_hub.src.tests import test_case

from keras_dualobj import DualBackbone

from conftest import TINY_BACKBONE


class DualBackboneHarnessTest(test_case.TestCase):
    test_session = None  # tf.test.TestCase's context manager, not a test

    def setUp(self):
        self.init_kwargs = dict(TINY_BACKBONE)
        self.input_data = {
            "token_ids": np.arange(10, dtype="int32").reshape(2, 5) + 5,
            "padding_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32"),
        }

    def test_backbone_basics(self):
        self.run_backbone_test(
            cls=DualBackbone,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 5, TINY_BACKBONE["hidden_dim"]),
        )

    def test_saved_model(self):
        self.run_model_saving_test(
            cls=DualBackbone, init_kwargs=self.init_kwargs, input_data=self.input_data
        )

    def test_precision(self):
        self.run_precision_test(
            cls=DualBackbone, init_kwargs=self.init_kwargs, input_data=self.input_data
        )


class DualLMTaskTest(test_case.TestCase):
    """keras-hub's `run_task_test`, as far as a `DualLM` (a `keras.Model`, not a keras-hub
    `Task`) goes: serialization, `predict` on strings, on a dataset and on split
    preprocessing giving the same logits, and `fit` on each of those inputs."""

    test_session = None

    def test_task_basics(self):
        from keras_dualobj import DualLM
        from keras_dualobj.data import ByteTokenizer

        import tensorflow as tf

        model = DualLM(DualBackbone(**{**TINY_BACKBONE, "vocabulary_size": 272}),
                       tokenizer=ByteTokenizer(), seed=0)
        self.run_serialization_test(model)  # before compile, as keras-hub's tasks are checked
        model.compile(optimizer="auto")
        texts = ["the quick brown fox", "jumps over", "the lazy dog", "again"]
        preprocessor = model.preprocessor
        dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2)
        logits = model.predict(texts, batch_size=2, verbose=0)
        self.assertEqual(logits.shape, (4, preprocessor.sequence_length, 272))
        self.assertAllClose(logits, model.predict(dataset, verbose=0))
        model.preprocessor = None
        split = model.predict(dataset.map(preprocessor), verbose=0)
        model.preprocessor = preprocessor
        self.assertAllClose(logits, split)
        for inputs in (texts, dataset):
            history = model.fit(inputs, batch_size=None if inputs is dataset else 2, verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]))
        model.preprocessor = None
        history = model.fit(dataset.map(preprocessor), verbose=0)
        model.preprocessor = preprocessor
        self.assertTrue(np.isfinite(history.history["loss"][0]))
