"""The held-out PLL of study cells trained before the study measured it.

Studies written by older versions have no `final_md_pll` (the paper's MD-face loss,
`keras_dualobj.study.held_out.held_out_pll`) in their results. It needs no training:
`fill_held_out_pll` scores each such cell's saved model (`cells/<cell>/model.keras`) on
the study's held-out evaluation rows (prepared again from `study.json`: the same rows
the cell's other losses were measured on) and rewrites the cell's `result.json` and the
study's `results.csv` / `results.json` with it. A cell without a saved model keeps
`None`. Every verdict on the MD face (`summary.txt`, `recommend`, the findings) reads
the results through it and, where a cell still has `None`, says that the MD face is
judged by the ELBO there (`results.pll_not_measured`) or that the PLL was not measured.
"""

import dataclasses
import json
from pathlib import Path

from keras_dualobj.study.results import read_results
from keras_dualobj.study.results import write_results


def fill_held_out_pll(study_dir, stream=None, rows=None):
    """Measures `final_md_pll` of every finished cell that lacks it; returns the results.

    Args:
        study_dir: a study folder with `results.json` and `study.json`.
        stream: where to say which cells were scored or could not be (optional).
        rows: the study's held-out evaluation rows when the caller has them
            (`keras_dualobj.study.held_out.evaluation_rows`); prepared again from
            `study.json` otherwise, and only if a cell is to be scored.

    Returns:
        list of `CellResult` (in `results.json`'s order), with `final_md_pll` filled in
        where a model was saved.

    Example (a study whose cells all measured it is left as it is, and no Keras loads):
    >>> import tempfile
    >>> from keras_dualobj.study.results import CellResult
    >>> folder = tempfile.mkdtemp()
    >>> write_results([CellResult(0.5, 4, 100, 400, 10, 0, *[2.0] * 7, final_md_pll=1.5)], folder)
    >>> [r.final_md_pll for r in fill_held_out_pll(folder)]
    [1.5]
    """
    study_dir = Path(study_dir)
    results = read_results(study_dir)
    if all(result.final_md_pll is not None for result in results):
        return results
    from keras_dualobj.study.folder import CELLS_DIR
    from keras_dualobj.study.folder import study_cell_keys

    cells = [(result, key, study_dir / CELLS_DIR / key / "model.keras")
             for result, key in study_cell_keys(study_dir, results)]
    if rows is None and any(r.final_md_pll is None and model.is_file() for r, _, model in cells):
        rows = _study_evaluation_rows(study_dir)
    filled = []
    for result, key, model in cells:
        if result.final_md_pll is None and model.is_file():
            result = _score_cell(result, model, rows)
            message = f"{result.final_md_pll:.3f} nats/token, scored from model.keras (results predate it)"
        elif result.final_md_pll is None:
            message = "not measured: no model.keras in the cell folder"
        else:
            message = None
        if message and stream is not None:
            stream.write(f"[held-out PLL] {key}: {message}\n")
            stream.flush()
        filled.append(result)
    write_results(filled, study_dir)
    return filled


def _study_evaluation_rows(study_dir):
    """The held-out rows a study's cells were evaluated on, prepared from `study.json`."""
    from keras_dualobj.study.folder import load_study_config
    from keras_dualobj.study.held_out import evaluation_rows

    config = load_study_config(study_dir)
    data = config.recipe.prepare_data(
        data_dir=config.data_dir, repetitions=min(config.repetitions), verbose=False
    )
    return evaluation_rows(data, config)


def _score_cell(result, model_path, rows):
    """`result` with the PLL of the model at `model_path`; rewrites the cell's result.json."""
    import keras

    from keras_dualobj.models.saving import load_model
    from keras_dualobj.study.claims import CELL_RESULT_FILE
    from keras_dualobj.study.held_out import held_out_pll
    from keras_dualobj.training.atomic_files import atomic_write_text

    value = held_out_pll(load_model(model_path), rows)
    keras.backend.clear_session()
    result = dataclasses.replace(result, final_md_pll=value)
    atomic_write_text(model_path.parent / CELL_RESULT_FILE, json.dumps(dataclasses.asdict(result)))
    return result
