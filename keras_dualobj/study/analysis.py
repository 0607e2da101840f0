"""A finished study's analysis: GP best α per R on each face, and the paper's findings.

`analyse_study(study_dir)` reads `results.json` (and `multiple_choice.csv` if the cells
were scored) and judges the study as the paper does, on its metrics first: the held-out
AR loss and, for the MD face, the held-out PLL (pseudo-log-likelihood, `final_md_pll`)
and the PLL-scored multiple choice (`md`), with the ELBO (`final_md_elbo`, `md_elbo`)
beside them. It fits `keras_dualobj.study.gp_analysis` to each loss and each
multiple-choice error rate, and writes:

    gp_analysis.json    per metric: hyperparameters, best α per R, interval, P(α optimal)
    gp_best_alpha.png   one figure, both faces (each fitted without the α that leaves
                        it untrained: no α = 1 on the MD face, no α = 0 on the AR face): best α vs R with 90% intervals, and each
                        face's fitted surface against α at every R (points: seeds)
    analysis.txt        the seed table, the GP table and the three findings' verdicts

A metric no cell measured (results or scores written by an older version) is left out
of the fits and reported as not measured in the findings, with the command that
measures it.
"""

import csv
import json
import math
from pathlib import Path

from keras_dualobj.study.findings import findings_text
from keras_dualobj.study.gp_analysis import MIN_ALPHAS_PER_REPETITION
from keras_dualobj.study.gp_analysis import more_alphas_flags
from keras_dualobj.study.gp_analysis import optimal_alpha
from keras_dualobj.study.gp_analysis import optimal_alpha_from_points
from keras_dualobj.study.paper import UNTRAINED_END
from keras_dualobj.study.plots_gp import plot_gp_faces
from keras_dualobj.study.results import format_fraction
from keras_dualobj.study.results import metric_value
from keras_dualobj.study.results import read_results
from keras_dualobj.study.seeds import seed_summary_table
from keras_dualobj.training.atomic_files import atomic_write_text

# The paper's metrics first (the AR loss, the MD face's PLL), the ELBO beside them.
FACES = {"final_ar_loss": "AR loss", "final_md_pll": "MD PLL", "final_md_elbo": "MD ELBO"}


def read_multiple_choice(study_dir):
    """Rows of `multiple_choice.csv` (floats; NaN where a mode was not scored), or `[]`.

    A file written before the PLL had `md_accuracy` for the ELBO score and no
    `md_elbo_accuracy`: its column is read as `md_elbo_accuracy`, and `md_accuracy` (the
    PLL) is NaN until the cells are scored again (`--multiple-choice`).
    """
    path = Path(study_dir) / "multiple_choice.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "md_accuracy" in rows[0] and "md_elbo_accuracy" not in rows[0]:
        rows = [{**row, "md_accuracy": "", "md_elbo_accuracy": row["md_accuracy"]} for row in rows]
    return [{k: (int(v) if k in ("repetitions", "seed") else float(v) if v != "" else math.nan)
             for k, v in row.items()} for row in rows]


def choice_modes(choice_rows):
    """The multiple-choice modes scored in at least one cell, in the file's order."""
    names = [k[: -len("_accuracy")] for k in (choice_rows[0] if choice_rows else {})
             if k.endswith("_accuracy")]
    return [m for m in names if any(math.isfinite(r[f"{m}_accuracy"]) for r in choice_rows)]


def study_analyses(results, choice_rows=(), num_draws=4000):
    """`{name: optimal_alpha dict}`: each face's losses and each MC error rate, each
    fitted without the α that leaves its face untrained (`UNTRAINED_END`); a loss no
    cell measured is left out."""
    analyses = {
        FACES[m]: optimal_alpha(
            [r for r in results if r.ar_fraction != UNTRAINED_END[m]], m, num_draws=num_draws
        )
        for m in FACES
        if any(math.isfinite(metric_value(r, m)) for r in results)
    }
    for mode in choice_modes(choice_rows):
        rows = [r for r in choice_rows
                if math.isfinite(r[f"{mode}_accuracy"]) and r["ar_fraction"] != UNTRAINED_END[mode]]
        analyses[f"{mode} choice error"] = optimal_alpha_from_points(
            [r["ar_fraction"] for r in rows], [r["repetitions"] for r in rows],
            [1.0 - r[f"{mode}_accuracy"] for r in rows], num_draws=num_draws,
        )
    return analyses


def gp_table(analyses, ar_fractions=()):
    """Best α per R (GP) with the 90% interval and the most probable grid α, per metric;
    "not judged", with why and what to run, where a face has too few α at an R.

    Args:
        analyses: `study_analyses`' dict.
        ar_fractions: the study's α (both faces), for the grid the advice suggests.
    """
    lines = ["GP fit (Gaussian process over logit α and log2 R, seeds as noise): best α per R "
             "[90% interval]; P = probability that the grid α shown is the best grid α.", ""]
    short = False
    for name, analysis in analyses.items():
        fit = analysis["fit"]
        if fit is None:
            lines.append(f"{name}: not judged ({analysis['not_judged']})")
            short = True
            continue
        lines.append(
            f"{name}: length scales (logit α, log2 R) = ({fit['length_scales'][0]:.2f}, "
            f"{fit['length_scales'][1]:.2f}), noise sd = "
            f"{math.sqrt(fit['noise_variance']) * fit['scale']:.4f}"
        )
        for repetitions, row in analysis["per_repetition"].items():
            if "not_judged" in row:
                lines.append(f"  R = {repetitions:>4g}: not judged ({row['not_judged']})")
                short = True
                continue
            probabilities = row["probabilities"]
            top = max(range(len(probabilities)), key=probabilities.__getitem__)
            low, high = row["interval"]
            lines.append(
                f"  R = {repetitions:>4g}: best α {row['best_alpha']:.3f} [{low:.3f}, {high:.3f}]; "
                f"grid α {format_fraction(analysis['ar_fractions'][top])} with P = {probabilities[top]:.2f} "
                "(P per grid α: " + ", ".join(f"{p:.2f}" for p in probabilities) + ")"
            )
    if short:
        lines += ["", more_alphas_advice(ar_fractions)]
    return "\n".join(lines)


def more_alphas_advice(ar_fractions):
    """What to run when a face has too few α for the GP (see `MIN_ALPHAS_PER_REPETITION`)."""
    return (
        f"Not judged: with fewer than {MIN_ALPHAS_PER_REPETITION} α on a face at an R the GP's "
        "best α can only be one of the measured ones (a degenerate interval, P = 1). Train a "
        f"grid with >= {MIN_ALPHAS_PER_REPETITION} α on each face (α = 0 trains no AR, α = 1 no "
        "MD) into a new --output folder, with this study's other flags, e.g. "
        f"`keras-dualobj study {more_alphas_flags(ar_fractions)}`."
    )


def _json_ready(analyses):
    return {name: {**analysis, "per_repetition": {str(r): row for r, row in analysis["per_repetition"].items()}}
            for name, analysis in analyses.items()}


def analyse_study(study_dir, stream=None, num_draws=4000):
    """Writes `gp_analysis.json`, `gp_best_alpha.png` and `analysis.txt`; returns the text."""
    study_dir = Path(study_dir)
    results = read_results(study_dir)
    choice_rows = read_multiple_choice(study_dir)
    analyses = study_analyses(results, choice_rows, num_draws=num_draws)
    atomic_write_text(study_dir / "gp_analysis.json", json.dumps(_json_ready(analyses), indent=1))
    plot_gp_faces(results, analyses, study_dir / "gp_best_alpha.png")
    text = "\n\n".join([
        seed_summary_table(results),
        gp_table(analyses, sorted({r.ar_fraction for r in results})),
        findings_text(results, analyses, choice_rows),
    ])
    atomic_write_text(study_dir / "analysis.txt", text + "\n")
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()
    return text
