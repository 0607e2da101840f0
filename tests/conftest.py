"""Shared test fixtures.

The suite runs once per Keras backend: `KERAS_BACKEND=tensorflow|jax|torch python -m pytest`.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def prose_text():
    """Real English prose that every CPython installs: the language reference
    (`pydoc_data.topics`, ~465 kB), topics in a fixed order, blank-line separated.
    The tests make their data from it (or generate it); nothing outside the
    checkout and the installed packages is read."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[key].strip() for key in sorted(topics.topics))


@pytest.fixture(scope="session")
def prose_file(tmp_path_factory):
    """`prose_text()` written to a UTF-8 text file."""
    path = tmp_path_factory.mktemp("prose") / "prose.txt"
    path.write_text(prose_text(), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _fixed_seed():
    keras.utils.set_random_seed(1234)
    yield
