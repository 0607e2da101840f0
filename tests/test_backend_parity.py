"""Cross-backend parity: one set of weights scores the same on TensorFlow, JAX and PyTorch.

Under the backend of this session a tiny `DualLM` is trained a few steps and saved
(`model.keras` and a training checkpoint) with a fixed batch and fixed MD masks; the
two other backends load both in subprocesses (`tests/backend_parity.py`) and score
the batch: causal, bidirectional and prefix-LM logits, the AR loss and the MD loss
must agree within a relative difference of 1e-4 (float32). The measured differences
are printed (`pytest -s`).
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import backend_parity

from conftest import BACKENDS
from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
# It starts the other two backends itself: one pass suffices (tests/conftest.py).
pytestmark = pytest.mark.end_to_end("torch")
RELATIVE_TOLERANCE = 1e-4
SCORES = ("causal_logits", "bidirectional_logits", "prefix_logits", "ar_loss", "md_loss")


def relative_difference(actual, expected):
    """`max |actual - expected| / max |expected|`: the error relative to the scale."""
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """Reference scores here, and every backend's scores of the saved files."""
    directory = tmp_path_factory.mktemp("parity")
    model, batch = backend_parity.write_fixture(directory)
    reference = backend_parity.score_batch(model, batch)
    current = keras.backend.backend()
    others = [backend for backend in BACKENDS if backend != current]
    processes = {}
    for backend in others:
        environment = one_thread_environment(
            KERAS_BACKEND=backend,
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        processes[backend] = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "tests" / "backend_parity.py"),
                str(directory),
                str(directory / f"{backend}.npz"),
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    # The current backend goes through the same load path, in this process.
    backend_parity.main(directory, directory / f"{current}.npz")
    for backend, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{backend} worker failed:\n{output}"
    results = {}
    for backend in BACKENDS:
        with np.load(directory / f"{backend}.npz") as arrays:
            results[backend] = dict(arrays)
    return {"reference": reference, "results": results, "batch": batch, "current": current}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source", ["keras_file", "checkpoint"])
def test_saved_weights_score_the_same_on_every_backend(parity, backend, source):
    result = parity["results"][backend]
    assert str(result["backend"]) == backend
    differences = {
        name: relative_difference(result[f"{source}/{name}"], parity["reference"][name])
        for name in SCORES
    }
    print(
        f"\n{parity['current']} -> {backend} ({source}): "
        + ", ".join(f"{name} {value:.1e}" for name, value in differences.items())
    )
    for name, value in differences.items():
        assert value <= RELATIVE_TOLERANCE, (name, value)


def test_the_attention_modes_really_differ(parity):
    # Parity of three identical arrays would prove little: the modes must disagree.
    reference = parity["reference"]
    for first, second in (("causal", "bidirectional"), ("causal", "prefix"), ("prefix", "bidirectional")):
        assert relative_difference(reference[f"{first}_logits"], reference[f"{second}_logits"]) > 1e-2
    # Row 0 has prefix length 0 (causal), row 3 the whole row (bidirectional).
    np.testing.assert_allclose(reference["prefix_logits"][0], reference["causal_logits"][0], atol=1e-5)
    np.testing.assert_allclose(
        reference["prefix_logits"][3], reference["bidirectional_logits"][3], atol=1e-5
    )


def test_seeded_draws_are_valid_on_every_backend(parity):
    """The seeded draws (which do differ by backend, see the module docstring) are valid."""
    maskable = parity["batch"]["maskable_positions"]
    agreement = {}
    for backend, result in parity["results"].items():
        assert result["draws/ar_rows"].sum() == 4  # 0.5 x 8 rows
        for name in ("training_masks", "evaluate_masks"):
            masks = result[f"draws/{name}"]
            assert not (masks & ~maskable).any(), (backend, name)
            assert masks.any(axis=1).all(), (backend, name)
    for name in ("initial_embedding", "ar_rows", "training_masks", "evaluate_masks"):
        for index, first in enumerate(BACKENDS):
            for second in BACKENDS[index + 1 :]:
                agreement[f"{name} {first}/{second}"] = np.array_equal(
                    parity["results"][first][f"draws/{name}"],
                    parity["results"][second][f"draws/{name}"],
                )
    print("\nseeded draws identical across backends:", agreement)
