"""Shared test fixtures.

The suite runs once per Keras backend: `KERAS_BACKEND=tensorflow|jax|torch python -m pytest`.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = Path(
    os.environ.get("KERAS_DUALOBJ_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data_dir():
    """`../shared/data` beside the checkout (read-only in CI)."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.fail(
            f"Shared data directory {SHARED_DATA_DIR} is missing; set "
            "KERAS_DUALOBJ_SHARED_DATA to the folder holding tinyshakespeare/."
        )
    return SHARED_DATA_DIR


@pytest.fixture(autouse=True)
def _fixed_seed():
    keras.utils.set_random_seed(1234)
    yield
