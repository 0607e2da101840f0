"""The GP analysis as one figure with both faces (matplotlib, PNG)."""

from pathlib import Path

import numpy as np

from keras_dualobj.study.gp_analysis import warp_alpha
from keras_dualobj.study.paper import paper_ar_fraction
from keras_dualobj.study.plots import _pyplot
from keras_dualobj.study.results import format_fraction

# The MD panel shows the paper's MD-face loss (the PLL), or the ELBO where the PLL was
# not measured (results written by older versions).
_AR_FACE = ("AR loss", "final_ar_loss")
_MD_FACES = (("MD PLL", "final_md_pll"), ("MD ELBO", "final_md_elbo"))


def _alpha_axis(axes, fractions, axis="x"):
    positions = warp_alpha(fractions)
    labels = [format_fraction(a) for a in fractions]
    if axis == "x":
        axes.set_xticks(positions, labels, rotation=45)
    else:
        axes.set_yticks(positions, labels)


def plot_gp_faces(results, analyses, path):
    """Left: GP best α vs R with 90% intervals, AR loss, MD PLL and MD ELBO (and the MC
    error rates if present) against the paper's rule. Middle, right: each face's posterior
    mean ± 2 sd against α, one line per R, over the seeds' points. An R that the
    analysis did not judge (too few α) shows its points only."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 3, figsize=(16, 4.8))
    fractions = sorted({a for analysis in analyses.values() for a in analysis["ar_fractions"]})
    left = axes[0]
    styles = {"AR loss": ("C0", "-o"), "MD PLL": ("C3", "-s"), "MD ELBO": ("C1", "--s"),
              "ar choice error": ("C0", ":^"), "md choice error": ("C3", ":v")}
    for offset, (name, analysis) in enumerate(analyses.items()):
        if name not in styles:
            continue
        color, marker = styles[name]
        # An R not judged (too few α on the face) has no best α to draw.
        levels = sorted(r for r, row in analysis["per_repetition"].items() if "not_judged" not in row)
        if not levels:
            continue
        xs = np.log2(levels) + 0.06 * (offset - 1.5)
        best = warp_alpha([analysis["per_repetition"][r]["best_alpha"] for r in levels])
        low = warp_alpha([analysis["per_repetition"][r]["interval"][0] for r in levels])
        high = warp_alpha([analysis["per_repetition"][r]["interval"][1] for r in levels])
        # The posterior mean's minimiser can sit just outside the draws' 5-95% range.
        yerr = [np.maximum(best - low, 0.0), np.maximum(high - best, 0.0)]
        left.errorbar(xs, best, yerr=yerr, fmt=marker, color=color,
                      capsize=3, label=f"best α by {name}")
    levels = sorted({r.repetitions for r in results})
    left.plot(np.log2(levels), warp_alpha([paper_ar_fraction(r) for r in levels]), "k--",
              lw=1, label="paper's rule")
    _alpha_axis(left, fractions, axis="y")
    left.set_xticks(np.log2(levels), [str(r) for r in levels])
    left.set_xlabel("R (repetitions)")
    left.set_ylabel("best α (GP, 90% interval)")
    left.set_title("Best α per R, both faces")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    md_face = next(face for face in _MD_FACES if face[0] in analyses or face == _MD_FACES[-1])
    for axes_face, (name, metric) in zip(axes[1:], (_AR_FACE, md_face)):
        analysis = analyses[name]
        for index, (repetitions, row) in enumerate(sorted(analysis["per_repetition"].items())):
            color = f"C{index}"
            judged = "not_judged" not in row
            if judged:
                x = warp_alpha(row["dense_alpha"])
                mean, std = np.array(row["dense_mean"]), np.array(row["dense_std"])
                axes_face.plot(x, mean, color=color, label=f"R = {repetitions:g}")
                axes_face.fill_between(x, mean - 2 * std, mean + 2 * std, color=color, alpha=0.15)
            points = [r for r in results if r.repetitions == repetitions
                      and r.ar_fraction in analysis["ar_fractions"]]
            axes_face.plot(warp_alpha([r.ar_fraction for r in points]),
                           [getattr(r, metric) for r in points], "o", color=color, ms=3,
                           label=None if judged else f"R = {repetitions:g} (not judged)")
        _alpha_axis(axes_face, analysis["ar_fractions"])
        axes_face.set_xlabel("α (share of AR rows; logit scale)")
        axes_face.set_ylabel(f"held-out {name} (nats/token)")
        judged = analysis["fit"] is not None
        axes_face.set_title(f"GP fit: {name} (points: seeds)" if judged
                            else f"{name}: not judged (too few α; points: seeds)")
        axes_face.grid(alpha=0.3)
        axes_face.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return Path(path)
