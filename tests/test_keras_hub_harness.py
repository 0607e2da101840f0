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
