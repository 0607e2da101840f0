"""Training under `keras.distribution` (JAX, 4 virtual CPU devices).

The checks run in one subprocess (`distribution_checks.py`) started with
`XLA_FLAGS=--xla_force_host_platform_device_count=4`, so JAX starts once with four
devices; each test asserts on its part of the JSON. They exist on the JAX backend
only (Keras 3.15 distributes on JAX only); on TensorFlow and PyTorch this module
checks instead that a distribution is refused with a clear error.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dualobj.training.distribution import DISTRIBUTION_BACKENDS
from keras_dualobj.training.distribution import make_distribution
from keras_dualobj.training.distribution import parse_distribution

from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
# Losses and weights of one device vs 4: float32 sums reordered across devices
# (measured: losses within 2e-7 relative, weights within 8e-6 after 3 Muon steps,
# whose Newton-Schulz iteration amplifies rounding).
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 5e-5


@pytest.mark.backend_independent
def test_specs_parse_and_bad_specs_are_refused():
    assert parse_distribution("model:2x4").batch == 2
    assert parse_distribution("data:4").batch == 4
    assert str(parse_distribution("single")) == "single"
    for bad in ("model", "model:2", "data:0", "pipeline", "model:0x4"):
        with pytest.raises(ValueError, match="accepted are"):
            parse_distribution(bad)
    with pytest.raises(TypeError):
        parse_distribution(4)


if keras.backend.backend() not in DISTRIBUTION_BACKENDS:

    def test_distribution_is_refused_off_jax():
        assert make_distribution("single") is None
        with pytest.raises(ValueError, match="JAX backend"):
            make_distribution("data")

else:

    @pytest.fixture(scope="module")
    def checks(tmp_path_factory):
        folder = tmp_path_factory.mktemp("distribution")
        environment = one_thread_environment(
            KERAS_BACKEND="jax",
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        completed = subprocess.run(
            [sys.executable, str(REPO_ROOT / "tests" / "distribution_checks.py"), str(folder)],
            env=environment, capture_output=True, text=True, timeout=900,
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
        assert completed.returncode == 0 and lines, completed.stderr[-3000:]
        return json.loads(lines[-1][len("RESULT "):])

    def test_four_devices(checks):
        assert len(checks["devices"]) == 4

    @pytest.mark.parametrize("alpha", ["0.0", "0.5", "1.0"])
    @pytest.mark.parametrize("spec", ["data", "model:2x2"])
    def test_same_losses_as_one_device(checks, alpha, spec):
        single = checks["losses"][f"{alpha}/single"]["losses"]
        distributed = checks["losses"][f"{alpha}/{spec}"]
        # Before the first update and after each of the next ones.
        np.testing.assert_allclose(distributed["losses"], single, rtol=LOSS_TOLERANCE)
        assert distributed["max_weight_difference"] <= WEIGHT_TOLERANCE
        assert single[-1] < single[0]  # the steps did train

    def test_layout_map_really_shards(checks):
        variables = checks["shardings"]["variables"]
        sharded = 0
        for path, info in variables.items():
            expected = info["expected"] or [None] * len(info["shape"])
            assert info["spec"] == expected, path
            for axis, size, shard in zip(expected, info["shape"], info["shard_shape"]):
                assert shard == (size // 2 if axis else size), path
            sharded += any(expected)
        # Embedding, head and 7 matrices per block are split; norm scales are not.
        assert sharded == 2 + 7 * 2
        slots = checks["shardings"]["optimizer_slots"]
        assert slots and all(
            any(info["spec"]) and info["shard_shape"] != info["shape"] for info in slots.values()
        )

    def test_kill_and_resume_under_model_parallel(checks):
        assert checks["resume"]["trained_difference"] > 1e-3
        assert checks["resume"]["max_weight_difference"] <= WEIGHT_TOLERANCE

    def test_paper_preset_dry_run_under_model_parallel(checks):
        from test_distribution_cli import check_dry_run

        check_dry_run(checks["cli"])

    def test_each_process_reads_its_shard_of_every_global_batch(checks):
        shards = checks["process_shards"]
        assert len(shards["per_process"][0]) == len(shards["global"])
        for step, global_batch in enumerate(shards["global"]):
            first, second = (process[step] for process in shards["per_process"])
            assert len(first) == len(second) == len(global_batch) // 2
            assert first + second == global_batch
