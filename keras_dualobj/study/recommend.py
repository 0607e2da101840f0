"""Which AR share α to train with, for a given number of data repetitions: the paper's
rule (`keras_dualobj.study.paper`) and, from a finished study, the measured and the GP's
best α. The top of `keras_dualobj.study`'s analysis modules: nothing in the study imports it.
"""

from keras_dualobj.study.gp_analysis import optimal_alpha
from keras_dualobj.study.paper import UNTRAINED_END
from keras_dualobj.study.paper import paper_ar_fraction  # also read from here by the guides
from keras_dualobj.study.results import best_ar_fractions
from keras_dualobj.study.results import read_results
from keras_dualobj.study.seeds import mean_results
from keras_dualobj.utils.validation import check_float


def recommend_ar_fraction(repetitions, study_dir=None):
    """The paper's α for `repetitions` and, given a study directory, the measured best.

    Args:
        repetitions: float >= 1.
        study_dir: optional folder of a finished `keras-dualobj study`; R must lie
            within its range of R.

    Returns:
        dict with `paper` (`paper_ar_fraction`) and, with a study:

        - at a measured R, `measured_ar_loss` / `measured_md_elbo`: the grid α with
          the lowest held-out AR loss / MD ELBO (mean over seeds) and
          `measured_..._value` the loss;
        - `gp_ar_loss` / `gp_md_elbo` (see `keras_dualobj.study.analysis`):
          `{"best_alpha", "interval"}`, the GP's best α at R and its 90% interval
          (interpolated between measured R); in their place
          `gp_ar_loss_not_judged` / `gp_md_elbo_not_judged`, why, where the face has
          too few α at R for a best α (`gp_analysis.alpha_coverage`).

    Example:
    >>> recommend_ar_fraction(32)
    {'repetitions': 32.0, 'paper': 0.5}
    """
    repetitions = check_float("repetitions", repetitions, minimum=1.0)
    recommendation = {"repetitions": repetitions, "paper": paper_ar_fraction(repetitions)}
    if study_dir is None:
        return recommendation
    results = read_results(study_dir)
    measured = sorted({r.repetitions for r in results})
    if not measured[0] <= repetitions <= measured[-1]:
        raise ValueError(
            f"The study in {study_dir} has no cells at R = {repetitions:g}; it measured "
            f"R in {measured} (the GP analysis interpolates between them, it does not "
            "extrapolate)."
        )
    if repetitions in measured:
        means = mean_results(results)
        for metric, name in (("final_ar_loss", "ar_loss"), ("final_md_elbo", "md_elbo")):
            best = best_ar_fractions(means, metric)[int(repetitions)]["best"]
            if best is None:
                raise ValueError(
                    f"The study in {study_dir} has no finite {metric} at R = {repetitions:g}."
                )
            recommendation[f"measured_{name}"] = best.ar_fraction
            recommendation[f"measured_{name}_value"] = getattr(best, metric)
    recommendation.update(_gp_recommendation(results, repetitions))
    return recommendation


def _gp_recommendation(results, repetitions):
    """The GP's best α at R per face, or why it is not judged there."""
    recommendation = {}
    for metric, name in (("final_ar_loss", "ar_loss"), ("final_md_elbo", "md_elbo")):
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
