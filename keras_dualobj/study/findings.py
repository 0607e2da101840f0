"""The paper's three findings, judged on a study's cells (mean over seeds, seed spread).

Each is judged on the paper's metrics first — the held-out AR loss, and for the MD face
the held-out PLL (pseudo-log-likelihood per token, `final_md_pll`) and the PLL-scored
multiple choice (`md`) — then on the ELBO beside them (`final_md_elbo`, `md_elbo`).

1. *Mixing beats either end at every R*: at each R, the best mixed α (0 < α < 1) has a
   lower mean held-out loss than both α = 0 and α = 1, beyond the seed spread
   (`keras_dualobj.study.seeds.compare_cells`). Judged on each face's loss and, if the
   cells were scored, on each mode's multiple-choice error rate.
2. *Dual models resist overfitting*: at the largest R, pure AR's held-out AR loss ends
   above its best (final - best) by more than the best mixed α's does, beyond the
   spread; likewise pure MD on the MD ELBO (the one MD metric with a training curve:
   the PLL is measured at the end only).
3. *The best α is about the same on both faces*: at every R, the GP's 90% intervals for
   the best α on the AR loss and on the MD PLL overlap (and on the AR-mode and MD-mode
   multiple-choice error if the cells were scored; then the same with the ELBO).

A metric that no cell measured (results written by an older version) is reported as
"NOT MEASURED" with the command that measures it from the saved models.

Each verdict is "reproduced", "partly (at R ...)" or "not reproduced", with the numbers,
or "NOT JUDGED" with what is missing and what to run: for (1) and (2) with one seed
(there is no spread to compare with) or without the cells they compare (a mixed α and
both ends; at the largest R for (2)); for (3) at an R where a face has too few α for the
GP to place a best α (`keras_dualobj.study.gp_analysis.MIN_ALPHAS_PER_REPETITION`).
A verdict is only ever given over the R that were judged.
"""

import dataclasses
import math

import numpy as np

from keras_dualobj.study.gp_analysis import MIN_ALPHAS_PER_REPETITION
from keras_dualobj.study.gp_analysis import more_alphas_flags
from keras_dualobj.study.results import format_fraction
from keras_dualobj.study.results import metric_value
from keras_dualobj.study.seeds import compare_cells
from keras_dualobj.study.seeds import seed_statistics


ONE_SEED = "NOT JUDGED (one seed: no spread to judge against; needs >= 2 seeds: --seeds 0 1 2)"
NO_MIXED_AND_ENDS = ("NOT JUDGED (no R has a mixed α (0 < α < 1) beside both ends α = 0 and "
                     "α = 1: --ar-fractions 0 1/2 1)")
# Printed under the findings when one is not judged: the flags each one names train what
# is missing, but a study folder keeps its grid (`keras_dualobj.study.claims`).
NOT_MEASURED = ("NOT MEASURED (results written before it; `keras-dualobj study --output DIR "
                "--analyse-only{}` scores it from each cell's model.keras)")
NOT_JUDGED_NOTE = ("    NOT JUDGED: the flags named train what is missing; a study folder keeps its "
                   "grid, so run `keras-dualobj study` with them and this study's other flags "
                   "into a new --output folder.")


def _verdict(good, all_levels, seeds=2, empty=NO_MIXED_AND_ENDS):
    """`good` of the judged `all_levels`; `empty` when no R could be judged (never a
    verdict over nothing)."""
    if seeds < 2:
        return ONE_SEED
    if not all_levels:
        return empty
    if good == all_levels:
        return "REPRODUCED"
    if good:
        return f"PARTLY (at R = {', '.join(str(r) for r in good)})"
    return "NOT REPRODUCED"


def mixing_beats_ends(results, metric):
    """Per R: the best mixed α, its mean, and its comparison with each end."""
    statistics = seed_statistics(results, metric)
    rows = {}
    for repetitions in sorted({r for _, r in statistics}):
        mixed = [a for a, r in statistics if r == repetitions and 0.0 < a < 1.0]
        ends = [a for a in (0.0, 1.0) if (a, repetitions) in statistics]
        if not mixed or len(ends) < 2:
            continue
        best = min(mixed, key=lambda a: statistics[(a, repetitions)]["mean"])
        comparisons = {end: compare_cells(statistics, (best, repetitions), (end, repetitions)) for end in ends}
        rows[repetitions] = {
            "alpha": best,
            "mean": statistics[(best, repetitions)]["mean"],
            "std": statistics[(best, repetitions)]["std"],
            "comparisons": comparisons,
            "holds": all(c["difference"] < 0 and c["beyond_spread"] for c in comparisons.values()),
        }
    return rows


def _gap_results(results, final, best):
    return [dataclasses.replace(r, final_ar_loss=getattr(r, final) - getattr(r, best)) for r in results]


def overfitting_gaps(results, end, final="final_ar_loss", best="best_ar_loss"):
    """At the largest R: (final - best) of the `end` α vs the best mixed α's."""
    gaps = seed_statistics(_gap_results(results, final, best), "final_ar_loss")
    top = max(r for _, r in gaps)
    mixed = [a for a, r in gaps if r == top and 0.0 < a < 1.0]
    if not mixed or (end, top) not in gaps:
        return None
    loss = seed_statistics(results, final)
    chosen = min(mixed, key=lambda a: loss[(a, top)]["mean"])
    return {
        "repetitions": top,
        "end": gaps[(end, top)],
        "mixed_alpha": chosen,
        "mixed": gaps[(chosen, top)],
        "comparison": compare_cells(gaps, (end, top), (chosen, top)),
    }


def choice_error_results(results, choice_rows, mode):
    """Copies of `results` whose `final_ar_loss` is the `mode` multiple-choice error
    rate (1 - accuracy) of the same (α, R, seed) cell; cells not scored are left out."""
    by_cell = {(r["ar_fraction"], r["repetitions"], r["seed"]): r for r in choice_rows}
    return [
        dataclasses.replace(r, final_ar_loss=1.0 - by_cell[key][f"{mode}_accuracy"])
        for r in results
        if (key := (r.ar_fraction, r.repetitions, r.seed)) in by_cell
        and math.isfinite(by_cell[key].get(f"{mode}_accuracy", math.nan))
    ]


def _finding_one_faces(results, choice_rows):
    """`[(cells, metric, name)]`, the paper's metrics first; `cells` is `None` where the
    metric was not measured."""
    measured = [r for r in results if math.isfinite(metric_value(r, "final_md_pll"))]
    faces = [(results, "final_ar_loss", "held-out AR loss"),
             (measured or None, "final_md_pll", "held-out MD PLL")]
    scored = bool(choice_rows)
    for mode, name in (("ar", "ar-mode"), ("md", "md-mode (PLL)")):
        if scored:
            cells = choice_error_results(results, choice_rows, mode)
            faces.append((cells or None, "final_ar_loss", f"{name} multiple-choice error"))
    faces.append((results, "final_md_elbo", "held-out MD ELBO"))
    if scored:
        cells = choice_error_results(results, choice_rows, "md_elbo")
        faces.append((cells or None, "final_ar_loss", "md_elbo-mode multiple-choice error"))
    return faces


def _finding_one(results, choice_rows=()):
    lines = []
    seeds = len({r.seed for r in results})
    for cells, metric, name in _finding_one_faces(results, choice_rows):
        if cells is None:
            flag = " --multiple-choice" if "choice" in name else ""
            lines.append(f"(1) mixing beats both ends, on the {name}: {NOT_MEASURED.format(flag)}")
            continue
        rows = mixing_beats_ends(cells, metric)
        good = [r for r, row in rows.items() if row["holds"]]
        lines.append(f"(1) mixing beats both ends, on the {name}: {_verdict(good, list(rows), seeds)}")
        for r, row in rows.items():
            vs = ", ".join(
                f"vs α={end:g} {c['difference']:+.3f}±{c['spread']:.3f}{'*' if c['beyond_spread'] else ''}"
                for end, c in row["comparisons"].items()
            )
            lines.append(f"    R = {r:>3}: best mixed α {format_fraction(row['alpha'])} "
                         f"{row['mean']:.3f}±{row['std']:.3f}; {vs}")
    return lines


def _finding_two(results):
    lines = []
    for end, final, best, name in ((1.0, "final_ar_loss", "best_ar_loss", "pure AR on the AR loss"),
                                   (0.0, "final_md_elbo", "best_md_elbo",
                                    "pure MD on the MD ELBO, its one curve")):
        gap = overfitting_gaps(results, end, final, best)
        if gap is None:
            top = max(r.repetitions for r in results)
            flags = "0 1/2" if end == 0 else "1/2 1"
            lines.append(
                f"(2) dual resists overfitting ({name}, R = {top}): NOT JUDGED (needs α = {end:g} "
                f"and a mixed α (0 < α < 1) at the largest R: --ar-fractions {flags})"
            )
            continue
        c = gap["comparison"]
        holds = c["difference"] > 0 and c["beyond_spread"]
        verdict = "REPRODUCED" if holds else "NOT REPRODUCED"
        if min(gap["end"]["n"], gap["mixed"]["n"]) < 2:
            verdict = ONE_SEED
        lines.append(
            f"(2) dual resists overfitting ({name}, R = {gap['repetitions']}): "
            f"{verdict}: final - best = "
            f"{gap['end']['mean']:.3f}±{gap['end']['std']:.3f} at α = {end:g} vs "
            f"{gap['mixed']['mean']:.3f}±{gap['mixed']['std']:.3f} at α = "
            f"{format_fraction(gap['mixed_alpha'])}"
        )
    return lines


def _overlap(first, second):
    return first[0] <= second[1] and second[0] <= first[1]


def _interval_text(row):
    if "not_judged" in row:
        return f"not judged ({row['not_judged']})"
    low, high = row["interval"]
    return f"{row['best_alpha']:.3f} [{low:.3f}, {high:.3f}]"


def _finding_three(analyses, pairs, ar_fractions):
    lines = []
    for a_name, b_name in pairs:
        if a_name not in analyses or b_name not in analyses:
            if "PLL" in b_name or b_name == "md choice error" and "md_elbo choice error" in analyses:
                flag = " --multiple-choice" if "choice" in b_name else ""
                lines.append(f"(3) same best α on both faces ({a_name} vs {b_name}): "
                             + NOT_MEASURED.format(flag))
            continue
        a, b = analyses[a_name]["per_repetition"], analyses[b_name]["per_repetition"]
        levels = sorted(set(a) & set(b))
        judged = [r for r in levels if "not_judged" not in a[r] and "not_judged" not in b[r]]
        good = [r for r in judged if _overlap(a[r]["interval"], b[r]["interval"])]
        verdict = _verdict(good, judged, empty=(
            f"NOT JUDGED (at every R a face has fewer than {MIN_ALPHAS_PER_REPETITION} α, so "
            "the GP's best α can only be a measured one: "
            f"{more_alphas_flags(ar_fractions)})"))
        if judged and len(judged) < len(levels):
            verdict += f" (judged at R = {', '.join(str(r) for r in judged)} only)"
        lines.append(f"(3) same best α on both faces ({a_name} vs {b_name}, GP 90% intervals overlap): "
                     f"{verdict}")
        for r in levels:
            lines.append(f"    R = {r:>4g}: {_interval_text(a[r])} vs {_interval_text(b[r])}")
    return lines


def findings_text(results, analyses, choice_rows=()):
    """The three findings' verdicts with their numbers (see the module docstring).

    Example:
    >>> from keras_dualobj.study.results import CellResult
    >>> cells = [CellResult(a, 4, 100, 400, 10, s, l + s / 100, l - 0.1 * a, 1.0, m, m, l, 1.0)
    ...          for s in (0, 1) for a, l, m in [(0.0, 3.0, 2.5), (0.5, 2.0, 2.4), (1.0, 2.5, 5.0)]]
    >>> print("\\n".join(findings_text(cells, {}).splitlines()[:3]))
    The paper's metrics first (AR loss; MD face: PLL, PLL-scored choice), then the ELBO beside them.
    (1) mixing beats both ends, on the held-out AR loss: REPRODUCED
        R =   4: best mixed α 1/2 2.005±0.007; vs α=0 -1.000±0.014*, vs α=1 -0.500±0.014*
    """
    lines = ["The paper's metrics first (AR loss; MD face: PLL, PLL-scored choice), then the ELBO "
             "beside them."]
    lines += _finding_one(results, choice_rows)
    lines += _finding_two(results)
    lines += _finding_three(analyses, [("AR loss", "MD PLL"), ("ar choice error", "md choice error"),
                                       ("AR loss", "MD ELBO"), ("ar choice error", "md_elbo choice error")],
                            sorted({r.ar_fraction for r in results}))
    modes = [m for m in ("ar", "prefix", "md", "md_elbo")
             if choice_rows and any(math.isfinite(r.get(f"{m}_accuracy", math.nan)) for r in choice_rows)]
    if modes:
        accuracy = [np.nanmean([r[f"{m}_accuracy"] for r in choice_rows]) for m in modes]
        lines.append(f"    multiple choice, mean accuracy over all cells ({', '.join(modes)}): "
                     + ", ".join(f"{v:.3f}" for v in accuracy))
    if any("NOT JUDGED" in line for line in lines):
        lines.append(NOT_JUDGED_NOTE)
    return "\n".join(lines)
