"""`keras-dualobj recommend`: which α to train with for R repetitions of the data.

    keras-dualobj recommend --repetitions 32
    keras-dualobj recommend --repetitions 64 --study studies/quick
"""

import argparse
import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "recommend",
        help="the AR share α for R repetitions (the paper's rule, or a study's measurement)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repetitions", type=float, required=True, help="R, passes over the unique data")
    parser.add_argument("--study", help="folder of a finished `keras-dualobj study` to read the measured α from")
    parser.set_defaults(run=run_recommend)
    return parser


def run_recommend(args):
    from keras_dualobj.study import recommend_ar_fraction
    from keras_dualobj.study.recommend import LOW_REPETITION_AR_FRACTION
    from keras_dualobj.study.results import format_fraction

    try:
        recommendation = recommend_ar_fraction(args.repetitions, args.study)
    except (ValueError, FileNotFoundError) as error:
        print(f"keras-dualobj recommend: error: {error}", file=sys.stderr)
        return 2
    repetitions = recommendation["repetitions"]
    paper = recommendation["paper"]
    rule = (
        "63/64 up to 16 repetitions"
        if paper == LOW_REPETITION_AR_FRACTION
        else "α · R ≈ 16 beyond 16 repetitions"
    )
    print(f"R = {repetitions:g}: the paper's rule ({rule}) gives α = {format_fraction(paper)} ({paper:.4f})")
    if "measured_ar_loss" in recommendation:
        for name, label in (("ar_loss", "held-out AR loss"), ("md_elbo", "held-out MD ELBO")):
            alpha = recommendation[f"measured_{name}"]
            value = recommendation[f"measured_{name}_value"]
            print(f"  {args.study}: best α by {label} = {format_fraction(alpha)} ({value:.3f} nats/token)")
    return 0
