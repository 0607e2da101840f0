"""Which AR share α to train with, for a given number of data repetitions: the paper's
rule (`keras_dualobj.study.paper`) and, from a finished study, the measured and the GP's
best α. The top of `keras_dualobj.study`'s analysis modules: nothing in the study imports it.

The MD face is judged as the paper judges it, by the held-out PLL (`final_md_pll`), with
the ELBO (`final_md_elbo`) beside it. A study written before the PLL is first completed
from its cells' saved models (`keras_dualobj.study.cell_pll.fill_held_out_pll`, as
`keras-dualobj study --analyse-only` does, written back into the folder); where a cell
the verdict reads still has none (no saved model), the MD face is judged by the ELBO and
the recommendation says so (`md_face`, `md_pll_not_measured`).
"""

from keras_dualobj.study.cell_pll import fill_held_out_pll
from keras_dualobj.study.gp_analysis import optimal_alpha
from keras_dualobj.study.paper import UNTRAINED_END
from keras_dualobj.study.paper import paper_ar_fraction  # also read from here by the guides
from keras_dualobj.study.results import best_ar_fractions
from keras_dualobj.study.results import pll_not_measured
from keras_dualobj.study.seeds import mean_results
from keras_dualobj.utils.validation import check_float

# The faces a study recommends by (metric, key name), the MD face's PLL before its ELBO.
FACES = (("final_ar_loss", "ar_loss"), ("final_md_pll", "md_pll"), ("final_md_elbo", "md_elbo"))


def recommend_ar_fraction(repetitions, study_dir=None, stream=None):
    """The paper's α for `repetitions` and, given a study directory, the measured best.

    Args:
        repetitions: float >= 1.
        study_dir: optional folder of a finished `keras-dualobj study`; R must lie
            within its range of R. Cells without a held-out PLL (results written
            before it) are scored from their `model.keras` first, into the folder.
        stream: where that scoring says which cells it scored (optional).

    Returns:
        dict with `paper` (`paper_ar_fraction`) and, with a study:

        - `md_face`: the metric the MD face is judged by, `"md_pll"` (the paper's), or
          `"md_elbo"` where a cell the verdict reads has no PLL, with
          `md_pll_not_measured` saying how many (then no `..._md_pll` keys);
        - at a measured R, `measured_ar_loss` / `measured_md_pll` / `measured_md_elbo`:
          the grid α with the lowest held-out AR loss / MD PLL / MD ELBO (mean over
          seeds) and `measured_..._value` the loss;
        - `gp_ar_loss` / `gp_md_pll` / `gp_md_elbo` (see `keras_dualobj.study.analysis`):
          `{"best_alpha", "interval"}`, the GP's best α at R and its 90% interval
          (interpolated between measured R); in their place `gp_..._not_judged`, why,
          where the face has too few α at R for a best α (`gp_analysis.alpha_coverage`).

    Example (the PLL and the ELBO disagree on the MD face; the PLL's α is its verdict):
    >>> recommend_ar_fraction(32)
    {'repetitions': 32.0, 'paper': 0.5}
    >>> import tempfile
    >>> from keras_dualobj.study.results import CellResult, write_results
    >>> folder = tempfile.mkdtemp()
    >>> write_results([CellResult(a, 4, 100, 400, 10, 0, l, l, 1.0, e, e, l, 1.0, final_md_pll=p)
    ...                for a, l, p, e in [(0.0, 3.0, 2.0, 2.4), (0.5, 2.0, 1.9, 2.5),
    ...                                   (1.0, 2.5, 2.6, 4.0)]], folder)
    >>> found = recommend_ar_fraction(4, folder)
    >>> found["md_face"], found["measured_md_pll"], found["measured_md_elbo"]
    ('md_pll', 0.5, 0.0)
    """
    repetitions = check_float("repetitions", repetitions, minimum=1.0)
    recommendation = {"repetitions": repetitions, "paper": paper_ar_fraction(repetitions)}
    if study_dir is None:
        return recommendation
    results = fill_held_out_pll(study_dir, stream=stream)
    measured = sorted({r.repetitions for r in results})
    if not measured[0] <= repetitions <= measured[-1]:
        raise ValueError(
            f"The study in {study_dir} has no cells at R = {repetitions:g}; it measured "
            f"R in {measured} (the GP analysis interpolates between them, it does not "
            "extrapolate)."
        )
    faces = _md_face(results, repetitions, recommendation)
    if repetitions in measured:
        means = mean_results(results)
        for metric, name in faces:
            best = best_ar_fractions(means, metric)[int(repetitions)]["best"]
            if best is None:
                raise ValueError(
                    f"The study in {study_dir} has no finite {metric} at R = {repetitions:g}."
                )
            recommendation[f"measured_{name}"] = best.ar_fraction
            recommendation[f"measured_{name}_value"] = getattr(best, metric)
    recommendation.update(_gp_recommendation(results, repetitions, faces))
    return recommendation


def _md_face(results, repetitions, recommendation):
    """The faces to judge: all of `FACES`, or without the PLL (the MD face then judged by
    the ELBO, `md_face` and `md_pll_not_measured` added to `recommendation`) where a cell
    its verdicts read has none: the cells at R, and those the GP fits the MD face on."""
    read = [r for r in results
            if r.repetitions == repetitions or r.ar_fraction != UNTRAINED_END["final_md_pll"]]
    missing = [r for r in read if r.final_md_pll is None]
    if not missing:
        recommendation["md_face"] = "md_pll"
        return FACES
    recommendation["md_face"] = "md_elbo"
    recommendation["md_pll_not_measured"] = pll_not_measured(len(missing), len(read))
    return tuple(face for face in FACES if face[1] != "md_pll")


def _gp_recommendation(results, repetitions, faces):
    """The GP's best α at R per face, or why it is not judged there."""
    recommendation = {}
    for metric, name in faces:
        cells = [r for r in results if r.ar_fraction != UNTRAINED_END[metric]]
        if cells:
            row = optimal_alpha(cells, metric, num_draws=2000, at_repetitions=[repetitions])
            row = next(iter(row["per_repetition"].values()))
        else:
            row = {"not_judged": f"no cell trains this face (every α is {UNTRAINED_END[metric]:g})"}
        if "not_judged" in row:
            recommendation[f"gp_{name}_not_judged"] = row["not_judged"]
        else:
            recommendation[f"gp_{name}"] = {"best_alpha": row["best_alpha"], "interval": row["interval"]}
    return recommendation
