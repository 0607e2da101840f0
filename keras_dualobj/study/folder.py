"""Reading a study folder back: its configuration and where each cell lives."""

import json
from pathlib import Path

from keras_dualobj.study.results import cell_key
from keras_dualobj.study.claims import CELLS_DIR  # noqa: F401 (re-exported)
from keras_dualobj.study.claims import STUDY_FILE
from keras_dualobj.study.config import StudyConfig
from keras_dualobj.training import RunSpec


def read_study_json(study_dir):
    """The `study.json` of a study folder (a `FileNotFoundError` naming it if absent)."""
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"No study at {path}; run `keras-dualobj study --output {study_dir}` first."
        )
    return json.loads(path.read_text())


def load_study_config(study_dir):
    """The `StudyConfig` a study folder was run with.

    Example:
    >>> import tempfile
    >>> from keras_dualobj.study.claims import claim_study_dir
    >>> folder = Path(tempfile.mkdtemp())
    >>> config = StudyConfig((0, 1), (1, 4), 4 * 16 * 64, preset="tiny", seeds=(0, 1))
    >>> claim_study_dir(folder, config, overwrite=False)
    >>> load_study_config(folder) == config
    True
    """
    stored = read_study_json(study_dir)
    return StudyConfig(
        stored["ar_fractions"],
        stored["repetitions"],
        stored["token_budget"],
        seeds=stored.get("seeds"),
        evaluations=stored["evaluations"],
        evaluation_batches=stored["evaluation_batches"],
        data_dir=stored["data_dir"],
        recipe=RunSpec.from_json(stored["recipe"]),
    )


def study_cell_keys(study_dir, results):
    """`[(CellResult, cell folder name)]`: multi-seed studies name cells with a seed."""
    seeded = "seeds" in read_study_json(study_dir)
    return [
        (result, cell_key(result.ar_fraction, result.repetitions, result.seed if seeded else None))
        for result in results
    ]
