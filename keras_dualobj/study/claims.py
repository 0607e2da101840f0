"""Claiming a study folder: one study per folder, refused by the flags that differ.

`check_study_dir` refuses a folder that holds a study with other settings, naming each
differing setting as a flag (`--seed 0 there, 3 now`) and writing nothing;
`claim_study_dir` clears the previous study on `--overwrite` and writes `study.json`.
"""

import json
import shutil

from keras_dualobj.training.atomic_files import atomic_write_text
from keras_dualobj.training.run import normalise_config

STUDY_FILE = "study.json"
CELLS_DIR = "cells"
CELL_RESULT_FILE = "result.json"  # in each cell folder, once the cell is finished
# Set per cell by the grid, never in the shared recipe.
GRID_SETTINGS = ("ar_fraction", "repetitions", "unique_tokens", "token_budget", "fit_repetitions")


def _flat_settings(config_json, ignore=()):
    """A `StudyConfig.to_json()` as `{flag name: value}`: the grid's settings and the
    recipe's (less the recipe's per-cell ones), `ignore` left out."""
    flat = {
        name: value for name, value in (config_json.get("recipe") or {}).items()
        if name not in GRID_SETTINGS
    }
    flat.update({name: value for name, value in config_json.items() if name != "recipe"})
    return {name: value for name, value in flat.items() if name not in ignore}


def _flag_value(value):
    if isinstance(value, (list, tuple)):
        return " ".join(_flag_value(item) for item in value)
    if value is None:
        return "(unset)"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def study_differences(stored, given, ignore=()):
    """The settings in which two `StudyConfig.to_json()`s differ, as flags.

    Example:
    >>> from keras_dualobj.study.config import StudyConfig
    >>> a = StudyConfig((0, 1), (1, 4), token_budget=4 * 16 * 64, preset="tiny")
    >>> b = StudyConfig((0, 1), (1, 4), token_budget=8 * 16 * 64, preset="tiny", seed=3)
    >>> study_differences(a.to_json(), b.to_json())
    ['--seed 0 there, 3 now', '--token-budget 4,096 there, 8,192 now']
    """
    stored = _flat_settings(normalise_config(stored), ignore)
    given = _flat_settings(normalise_config(given), ignore)
    return [
        f"--{name.replace('_', '-')} {_flag_value(stored.get(name))} there, "
        f"{_flag_value(given.get(name))} now"
        for name in sorted(set(stored) | set(given))
        if stored.get(name) != given.get(name)
    ]


def check_study_dir(study_dir, config, overwrite, ignore=()):
    """Refuses a folder holding a study with other settings (nothing is written)."""
    path = study_dir / STUDY_FILE
    if overwrite or not path.is_file():
        return
    differences = study_differences(json.loads(path.read_text()), config.to_json(), ignore)
    if differences:
        cells = study_dir / CELLS_DIR
        trained = cells.is_dir() and any(cells.iterdir())
        shown = "; ".join(differences[:6]) + (
            f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        raise ValueError(
            f"{study_dir} holds a study with another configuration: {shown}. Rerun with "
            "its settings to resume it, use another --output folder, or pass --overwrite "
            "to delete its cells and start again"
            + ("." if trained else " (none of its cells was trained: nothing is lost).")
        )


def claim_study_dir(study_dir, config, overwrite):
    """Deletes the folder's previous study (`overwrite`), then writes `study.json`."""
    if overwrite and study_dir.exists():
        for name in (STUDY_FILE, CELLS_DIR, "results.csv", "results.json"):
            target = study_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(study_dir / STUDY_FILE, json.dumps(config.to_json(), indent=1))
