"""`keras-dualobj train --threads`: parsed, validated, and in effect on the current backend."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from keras_dualobj.cli import build_parser
from keras_dualobj.cli import main
from keras_dualobj.utils.threads import set_compute_threads
from keras_dualobj.utils.threads import thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh process (threads are settable only before the first computation):
# the CLI's own parsing and call, then one computation, then what each runtime reports.
PROBE = """
import os, sys
from keras_dualobj.cli import build_parser
from keras_dualobj.cli import train
args = build_parser().parse_args(["train", "--output-dir", "unused", "--threads", "1"])
assert args.threads == 1
from keras_dualobj.utils.threads import set_compute_threads
set_compute_threads(args.threads)
import keras, numpy as np
import tensorflow as tf
value = keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.ones((64, 64)) @ keras.ops.ones((64, 64))))
assert value == 64 ** 3, value
print("tf_intra", tf.config.threading.get_intra_op_parallelism_threads())
print("tf_inter", tf.config.threading.get_inter_op_parallelism_threads())
print("xla_flags", os.environ.get("XLA_FLAGS", ""))
if keras.backend.backend() == "torch":
    import torch
    print("torch_threads", torch.get_num_threads())
"""


def unlimited_environment(**overrides):
    """`os.environ` without any thread limit (an xdist worker sets one): the probe
    must show that `--threads 1` itself sets every limit."""
    environment = {**os.environ, **overrides}
    for name in thread_environment(1):
        environment.pop(name, None)
    return environment


def _probe():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=unlimited_environment(PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)


@pytest.fixture(scope="module")
def probed():
    return _probe()


@pytest.mark.backend_independent
def test_threads_option_is_parsed_and_documented():
    args = build_parser().parse_args(["train", "--output-dir", "x", "--threads", "3"])
    assert args.threads == 3
    assert build_parser().parse_args(["train", "--output-dir", "x"]).threads is None
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--threads" in help_text


def test_threads_limit_every_runtime_of_the_backend(probed):
    # TensorFlow serves the data on every backend, so its limit counts everywhere.
    assert probed["tf_intra"] == "1"
    assert probed["tf_inter"] == "1"
    if keras.backend.backend() == "torch":
        assert probed["torch_threads"] == "1"
    if keras.backend.backend() == "jax":
        # Accepted by XLA: the computation above ran under these flags.
        assert "intra_op_parallelism_threads=1" in probed["xla_flags"]
        assert "--xla_cpu_multi_thread_eigen=false" in probed["xla_flags"]


@pytest.mark.parametrize("threads, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_bad_thread_counts_are_refused(threads, error):
    with pytest.raises(error, match=f"threads={threads!r}"):
        set_compute_threads(threads)


@pytest.mark.backend_independent
def test_cli_refuses_a_bad_thread_count_before_touching_the_output_dir(tmp_path, capsys):
    output_dir = tmp_path / "run"
    assert main(["train", "--output-dir", str(output_dir), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not output_dir.exists()
