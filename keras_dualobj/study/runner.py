"""Runs an α × repetitions grid at a fixed token budget: one resumable model per cell.

A study directory holds:

    study.json                the study's configuration (its identity)
    cells/<cell>/             one `keras_dualobj.training.train` run per cell, with
                              checkpoints and logs, plus `result.json` once finished
    results.csv, results.json one row per finished cell (see `CellResult`)
    loss_vs_alpha.png, md_elbo_vs_alpha.png, heatmap_ar_loss.png, training_curves.png

Every cell trains the same preset with the same recipe and seed for the same number of
steps (`token_budget / (batch_size * sequence_length)`) on the first
`U = token_budget / R` unique training tokens, R times, reshuffled every epoch, and is
evaluated on the same held-out rows. A rerun skips finished cells and resumes a killed
one from its last checkpoint, ending with the weights an uninterrupted run would have.
"""

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import keras

from keras_dualobj.data import make_training_dataset
from keras_dualobj.data import plan_repetition
from keras_dualobj.study.plots import write_plots
from keras_dualobj.study.budget import fit_token_budget
from keras_dualobj.study.cell_pll import fill_held_out_pll
from keras_dualobj.study.claims import CELL_RESULT_FILE
from keras_dualobj.study.claims import CELLS_DIR
from keras_dualobj.study.claims import check_study_dir
from keras_dualobj.study.claims import claim_study_dir
from keras_dualobj.study.held_out import evaluation_rows
from keras_dualobj.study.held_out import held_out_pll
from keras_dualobj.study.held_out import second_half_losses
from keras_dualobj.study.progress import StudyProgress
from keras_dualobj.study.results import CellResult
from keras_dualobj.study.results import cell_key
from keras_dualobj.study.results import write_results
from keras_dualobj.study.seeds import mean_results
from keras_dualobj.study.seeds import seed_summary_table
from keras_dualobj.study.summary import prefix_comparison_table
from keras_dualobj.study.summary import summary_table
from keras_dualobj.training.atomic_files import atomic_write_text
from keras_dualobj.training import train
from keras_dualobj.training.callbacks import read_log_rows
from keras_dualobj.training.callbacks import format_duration
from keras_dualobj.training.run import LOG_DIR
from keras_dualobj.training.run import read_run_config
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float


@dataclasses.dataclass(frozen=True)
class StudyCell:
    """One (α, R, seed) cell: `unique_tokens * repetitions == token_budget`."""

    ar_fraction: float
    repetitions: int
    unique_tokens: int
    token_budget: int
    num_steps: int
    seed: int
    # Multi-seed studies name their cells `alpha..._R..._seed...`; not part of the run.
    seed_in_key: bool = dataclasses.field(default=False, compare=False)

    @property
    def key(self):
        return cell_key(self.ar_fraction, self.repetitions, self.seed if self.seed_in_key else None)

    def run_fields(self):
        """The cell's settings as its run records them."""
        fields = dataclasses.asdict(self)
        fields.pop("seed_in_key")
        return fields


def plan_cells(config):
    """The grid's cells, seed-major, then R-major (all α of the smallest R first).

    A multi-seed grid cut short thus has whole grids of its first seeds.

    Example:
    >>> from keras_dualobj.study.config import StudyConfig
    >>> config = StudyConfig((0.0, 1.0), (1, 4), token_budget=4 * 32 * 128)
    >>> [(c.ar_fraction, c.repetitions, c.unique_tokens, c.num_steps)
    ...  for c in plan_cells(config)]
    [(0.0, 1, 16384, 4), (1.0, 1, 16384, 4), (0.0, 4, 4096, 4), (1.0, 4, 4096, 4)]
    """
    return [
        StudyCell(
            ar_fraction=ar_fraction,
            repetitions=repetitions,
            unique_tokens=config.token_budget // repetitions,
            token_budget=config.token_budget,
            num_steps=config.num_steps,
            seed=seed,
            seed_in_key=config.seeds is not None,
        )
        for seed in config.seed_list
        for repetitions in config.repetitions
        for ar_fraction in config.ar_fractions
    ]


def _read_curve(cell_dir, steps_per_epoch):
    """Held-out losses logged during training: `[{"step", "epoch", "ar_loss", "md_elbo"}]`."""
    return [
        {
            "step": int(row["step"]),
            "epoch": int(row["step"]) / steps_per_epoch,
            "ar_loss": float(row["val_ar_loss"]),
            "md_elbo": float(row["val_md_loss"]),
        }
        for row in read_log_rows(cell_dir / LOG_DIR)
        if row.get("val_ar_loss")
    ]


def run_cell(cell, config, data, cell_dir, on_step=None):
    """Trains (or resumes) one cell and returns its `CellResult`."""
    started = time.perf_counter()
    plan = plan_repetition(
        data.train_rows,
        batch_size=config.recipe.batch_size,
        repetitions=cell.repetitions,
        unique_tokens=cell.unique_tokens,
    )
    if plan.total_steps != cell.num_steps:
        raise ValueError(
            f"Cell {cell.key} plans {plan.total_steps} steps instead of {cell.num_steps}; "
            "token_budget, batch size and R disagree with the data plan."
        )
    spec = config.cell_spec(cell)
    model = spec.build_model(tokenizer=data.tokenizer)
    spec.compile(model, cell.num_steps)
    log_every = math.gcd(cell.num_steps, max(1, cell.num_steps // (4 * config.evaluations)))
    eval_every = max(log_every, cell.num_steps // config.evaluations // log_every * log_every)
    run_config = {**config.to_json(), **cell.run_fields()}
    callbacks = [] if on_step is None else [_StepCallback(on_step)]
    result = train(
        model,
        lambda start: make_training_dataset(data.train_rows, plan, seed=cell.seed, start_step=start),
        cell.num_steps,
        cell_dir,
        tokens_per_step=spec.tokens_per_step,
        validation_data=data.validation_dataset,
        validation_steps=config.evaluation_batches,
        final_validation_steps=config.evaluation_batches,
        run_config=run_config,
        log_every=log_every,
        eval_every=eval_every,
        checkpoint_every=eval_every,
        keep_checkpoints=1,
        resume=read_run_config(cell_dir) is not None,
        callbacks=callbacks,
        stream=False,
    )
    curve = _read_curve(Path(cell_dir), plan.steps_per_epoch)
    best = min(curve, key=lambda point: point["ar_loss"])
    rows = evaluation_rows(data, config)
    second_half = second_half_losses(model, rows, config.recipe.batch_size)
    return CellResult(
        ar_fraction=cell.ar_fraction,
        repetitions=cell.repetitions,
        unique_tokens=plan.unique_tokens,
        token_budget=cell.token_budget,
        num_steps=cell.num_steps,
        seed=cell.seed,
        final_ar_loss=float(result.evaluation["ar_loss"]),
        best_ar_loss=best["ar_loss"],
        best_ar_loss_epoch=best["epoch"],
        final_md_elbo=float(result.evaluation["md_loss"]),
        best_md_elbo=min(point["md_elbo"] for point in curve),
        final_prefix_loss=second_half["prefix"],
        wall_seconds=time.perf_counter() - started,
        curve=curve,
        final_ar_suffix_loss=second_half["ar"],
        final_md_pll=held_out_pll(model, rows),
    )


class _StepCallback(keras.callbacks.Callback):
    """Calls `on_step()` after every training step."""

    def __init__(self, on_step):
        super().__init__()
        self.on_step = on_step

    def on_train_batch_end(self, batch, logs=None):
        self.on_step()


def _check_recipe(recipe):
    """The recipe checks `train` makes before its data, so that a bad value fails
    before the study claims its folder (the model and optimizer check again)."""
    from keras_dualobj.models.dual_lm import MD_VARIANTS
    from keras_dualobj.optimization.optimizers import OPTIMIZERS

    check_float("learning_rate", recipe.learning_rate, minimum=0.0)
    check_choice("md_variant", recipe.md_variant, MD_VARIANTS)
    check_choice("optimizer", recipe.optimizer, OPTIMIZERS)


def _prepare_study_data(config, stream):
    """The corpus and the grid's budget fitted to it (`fit_token_budget`); prints
    the data line with the plan of the largest U (the smallest R)."""
    data = config.recipe.prepare_data(
        data_dir=config.data_dir, repetitions=1, token_budget=None, unique_tokens=None,
        describe=False,
    )
    config = fit_token_budget(config, data.train_rows, stream)
    plan = plan_repetition(
        data.train_rows, batch_size=config.recipe.batch_size,
        repetitions=min(config.repetitions), token_budget=config.token_budget,
    )
    data = dataclasses.replace(
        data, plan=plan, train_dataset=make_training_dataset(data.train_rows, plan, seed=data.seed)
    )
    print(f"[keras_dualobj.data] {data.describe()}", file=stream, flush=True)
    return config, data


def run_study(config, study_dir, overwrite=False, stream=None):
    """Trains and evaluates every cell of `config` into `study_dir`; returns the results.

    Finished cells (`cells/<cell>/result.json`) are read back, not retrained; a cell
    killed mid-run resumes from its checkpoint. Cells read back from results written
    before the held-out PLL get it from their saved models (`keras_dualobj.study.cell_pll`)
    before `summary.txt` judges the MD face by it. Writes `results.csv`, `results.json`,
    the plots and `summary.txt` (the printed table).

    Args:
        config: a `StudyConfig`.
        study_dir: the study's folder; refused if it holds a study with another
            configuration unless `overwrite=True` (the refusal names the differing
            settings as flags). `study.json` is written once the grid fits the
            corpus, so a study that fails before leaves no folder to refuse a retry.
        overwrite: delete the folder's previous study first.
        stream: where progress and the table go (default `sys.stdout`).

    Returns:
        list of `CellResult`, one per cell.
    """
    stream = sys.stdout if stream is None else stream
    study_dir = Path(study_dir)
    # Checked before the data (minutes for a BPE) and again once C is fitted; the
    # folder is claimed (study.json) only when the grid fits the corpus.
    _check_recipe(config.recipe)
    check_study_dir(study_dir, config, overwrite, ("token_budget",) if config.fit_budget else ())
    config, data = _prepare_study_data(config, stream)
    check_study_dir(study_dir, config, overwrite)
    claim_study_dir(study_dir, config, overwrite)
    cells = plan_cells(config)
    results = {}
    for cell in cells:
        path = study_dir / CELLS_DIR / cell.key / CELL_RESULT_FILE
        if path.is_file():
            results[cell.key] = CellResult(**json.loads(path.read_text()))
    progress = StudyProgress(
        total_steps=len(cells) * config.num_steps,
        done_steps=len(results) * config.num_steps,
        stream=stream,
    )
    progress.line(
        f"[study] {len(cells)} cells ({len(config.ar_fractions)} α x "
        f"{len(config.repetitions)} R x {len(config.seed_list)} seeds), "
        f"{config.num_steps} steps each; "
        f"{len(results)} already finished in {study_dir}"
    )
    for index, cell in enumerate(cells, start=1):
        if cell.key in results:
            continue
        cell_dir = study_dir / CELLS_DIR / cell.key
        progress.start_cell(
            f"cell {index}/{len(cells)}: α={cell.ar_fraction:g} R={cell.repetitions} "
            f"seed={cell.seed} "
            f"U={cell.unique_tokens:,}"
        )
        result = run_cell(cell, config, data, cell_dir, on_step=progress.step)
        # Each cell builds and traces a fresh model: free the last one's graphs and
        # caches so that memory stays flat over a long grid.
        keras.backend.clear_session()
        atomic_write_text(cell_dir / CELL_RESULT_FILE, json.dumps(dataclasses.asdict(result)))
        results[cell.key] = result
        write_results(list(results.values()), study_dir)
        progress.line(
            f"[study] cell {index}/{len(cells)} α={cell.ar_fraction:g} R={cell.repetitions} "
            f"seed={cell.seed}: "
            f"held-out AR {result.final_ar_loss:.3f} (best {result.best_ar_loss:.3f} at "
            f"epoch {result.best_ar_loss_epoch:g}), MD PLL {result.final_md_pll:.3f}, "
            f"MD ELBO {result.final_md_elbo:.3f}; "
            f"second half of each row: AR {result.final_ar_suffix_loss:.3f} vs prefix-LM "
            f"{result.final_prefix_loss:.3f}; {format_duration(result.wall_seconds)}"
        )
    ordered, rows = [results[cell.key] for cell in cells], evaluation_rows(data, config)
    if any(result.final_md_pll is None for result in ordered):  # cells trained before it
        write_results(ordered, study_dir)
        filled = {(r.ar_fraction, r.repetitions, r.seed): r for r in fill_held_out_pll(study_dir, stream, rows)}
        ordered = [filled[(r.ar_fraction, r.repetitions, r.seed)] for r in ordered]
    progress.line(_write_outputs(ordered, config, rows.num_rows, study_dir))
    return ordered


def _write_outputs(ordered, config, rows, study_dir):
    """Results, plots and `summary.txt` of a finished grid; returns the table."""
    write_results(ordered, study_dir)
    # Plots and the first table show the mean over seeds (the cells as they are with one).
    means = mean_results(ordered)
    write_plots(means, study_dir)
    table = summary_table(
        means,
        estimator=(
            f"{rows} held-out rows of {config.recipe.sequence_length} tokens; AR and prefix-LM "
            "losses and MD PLL exact; MD ELBO a Monte-Carlo bound on the NLL (stratified t, "
            f"masks per row: {config.recipe.elbo_samples})."
        ),
    )
    comparison = prefix_comparison_table(means)
    if comparison:
        table += "\n\n" + comparison
    if len(config.seed_list) > 1:
        table += "\n\n" + seed_summary_table(ordered)
    atomic_write_text(study_dir / "summary.txt", table + "\n")
    return table
