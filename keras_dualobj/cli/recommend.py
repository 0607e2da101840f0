"""`keras-dualobj recommend`: which α to train with for R repetitions of the data.

    keras-dualobj recommend --repetitions 32
    keras-dualobj recommend --repetitions 64 --study studies/quick
    keras-dualobj recommend --repetitions 8 --study studies/regime   # GP between measured R

With --study: per face, the grid α with the lowest held-out loss (mean over seeds) at a
measured R, and the GP analysis's best α with its 90% interval (keras_dualobj.study.analysis)
at any R within the study's range, or why the GP does not judge a face there (too few
α on it). The AR face is judged by the AR loss; the MD face by the held-out PLL (the
paper's metric), with the MD ELBO printed beside it. A study written before the PLL is
first scored from its cells' model.keras (as `study --analyse-only` does, written back
into the folder); where a cell has no PLL and no saved model, the output says that the MD
face is judged by the ELBO there.
"""

import argparse
import sys

# (key, label) per line, the MD face's PLL before its ELBO.
FACES = (("ar_loss", "held-out AR loss"), ("md_pll", "held-out MD PLL"), ("md_elbo", "held-out MD ELBO"))


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "recommend",
        help="the AR share α for R repetitions (the paper's rule, or a study's measurement; "
             "MD face by the held-out PLL, the ELBO beside it)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repetitions", type=float, required=True, help="R, passes over the unique data")
    parser.add_argument("--study", help="folder of a finished `keras-dualobj study` to read the measured α from "
                                         "(cells without a held-out PLL are scored from their model.keras first)")
    parser.set_defaults(run=run_recommend)
    return parser


def _face_lines(recommendation, study, name, label):
    """The measured and GP lines of one face."""
    from keras_dualobj.study.results import format_fraction

    lines = []
    if f"measured_{name}" in recommendation:
        alpha = recommendation[f"measured_{name}"]
        value = recommendation[f"measured_{name}_value"]
        lines.append(f"  {study}: best grid α by {label} = {format_fraction(alpha)} "
                     f"({value:.3f} nats/token, mean over seeds)")
    if f"gp_{name}" in recommendation:
        gp = recommendation[f"gp_{name}"]
        low, high = gp["interval"]
        lines.append(f"  {study}: GP best α by {label} = {gp['best_alpha']:.3f} "
                     f"(90% interval {low:.3f} to {high:.3f})")
    elif f"gp_{name}_not_judged" in recommendation:
        lines.append(f"  {study}: GP best α by {label}: not judged "
                     f"({recommendation[f'gp_{name}_not_judged']})")
    return lines


def run_recommend(args):
    from keras_dualobj.study import recommend_ar_fraction
    from keras_dualobj.study.paper import LOW_REPETITION_AR_FRACTION
    from keras_dualobj.study.results import format_fraction

    recommendation = recommend_ar_fraction(args.repetitions, args.study, stream=sys.stderr)
    repetitions = recommendation["repetitions"]
    paper = recommendation["paper"]
    rule = (
        "63/64 up to 16 repetitions"
        if paper == LOW_REPETITION_AR_FRACTION
        else "α · R ≈ 16 beyond 16 repetitions"
    )
    print(f"R = {repetitions:g}: the paper's rule ({rule}) gives α = {format_fraction(paper)} ({paper:.4f})")
    for name, label in FACES:
        if name == "md_pll" and recommendation.get("md_face") == "md_elbo":
            print(f"  {args.study}: {recommendation['md_pll_not_measured']}: the MD face is judged "
                  "by the held-out MD ELBO here")
        for line in _face_lines(recommendation, args.study, name, label):
            print(line)
    return 0
