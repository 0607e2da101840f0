"""Every guide in guides/ runs to the end, as a reader would run it.

Each guide runs once per CI run, on the backend it is assigned to here (the suite runs
once per backend); the library code they use is tested on all three backends by the
other tests. A new guide must be given a backend below.
"""

import os
import subprocess
import sys

import keras
import pytest

from conftest import REPO_ROOT

GUIDE_BACKENDS = {
    "dual_objective_basics.py": "torch",
    "generation_and_evaluation.py": "tensorflow",
    "repetition_study.py": "jax",
    "training_recipe.py": "torch",
}
GUIDES = sorted(path.name for path in (REPO_ROOT / "guides").glob("*.py"))
BACKEND_GUIDES = [guide for guide in GUIDES if GUIDE_BACKENDS.get(guide) == keras.backend.backend()]


def test_every_guide_has_a_backend():
    assert sorted(GUIDE_BACKENDS) == GUIDES
    assert set(GUIDE_BACKENDS.values()) <= {"tensorflow", "jax", "torch"}


@pytest.mark.parametrize("guide", BACKEND_GUIDES)
def test_guide_runs(guide, tmp_path, shared_data_dir):
    environment = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        "KERAS_DUALOBJ_TFDS_LOCAL_COPY": str(shared_data_dir / "tinyshakespeare" / "input.txt"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
    }
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "guides" / guide)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stdout.strip(), "the guide printed nothing"
