"""The paper's analysis: a Gaussian-process fit over (α, R) and the best α per R.

Each held-out metric (AR loss, MD ELBO, ...) of every (α, R, seed) cell is one
observation of a smooth surface `f(α, R)` plus noise (the seed spread). The inputs are

    x1 = log2((α + ε) / (1 - α + ε)),  ε = 2^-8     (a logit of α: the paper's grid
         crowds both ends, 1/256 ... 255/256, and the ends are where the losses turn)
    x2 = log2(R)

and the prior is a zero-mean GP on the standardised metric with a squared-exponential
kernel (one length scale per input, unit variance) and white noise. Its two length
scales and noise variance maximise the log marginal likelihood over a fixed grid (no
optimiser, so the fit is deterministic). The posterior of the noise-free surface then
gives, for each R:

- the best α: the α minimising the posterior mean on a dense α grid;
- an interval: the 5th-95th percentiles of the minimising α over joint posterior draws;
- `P(α optimal)`: for each grid α, the share of draws in which it is the lowest of the
  grid's α.

At an R with fewer than `MIN_ALPHAS_PER_REPETITION` distinct α (or between measured R
where a neighbour has), the analysis says why it is not judged instead of giving an
interval (`alpha_coverage`).

Pure NumPy; every function returns plain arrays / dicts.
"""

import math

import numpy as np

from keras_dualobj.study.results import format_fraction
from keras_dualobj.study.results import metric_value
from keras_dualobj.study.seeds import METRICS

EPSILON = 2.0**-8
# Candidate hyperparameters (in standardised units) searched by `fit_gp`.
LENGTH_SCALES_ALPHA = tuple(2.0 ** np.arange(-1.0, 4.01, 0.5))
LENGTH_SCALES_REPETITIONS = tuple(2.0 ** np.arange(-1.0, 4.01, 0.5))
NOISE_VARIANCES = tuple(10.0 ** np.arange(-4.0, 0.01, 0.5))
JITTER = 1e-9
# A best α between measured α needs a measured α on each side of it: at least 3 distinct
# α at that R (an inner minimum is a point below both neighbours). With 2, the posterior
# mean between them runs back toward the targets' mean, which lies between the two
# values, so its minimiser is one of the two measured α and almost every posterior draw
# agrees: the "90% interval" collapses onto that α with P = 1.00, an artefact of the grid
# rather than evidence (a one-seed, two-α face gave "0.500 to 0.500, P = 1.00"). More
# seeds add points but no α and do not lift this. Three α also give the fit at least as
# many points as it has hyperparameters (two length scales and the noise).
MIN_ALPHAS_PER_REPETITION = 3


def warp_alpha(alpha, epsilon=EPSILON):
    """`log2((α + ε) / (1 - α + ε))`: the α axis of the fit.

    Example:
    >>> [round(float(x), 3) for x in warp_alpha([0.0, 0.5, 1.0])]
    [-8.006, 0.0, 8.006]
    """
    alpha = np.asarray(alpha, "float64")
    if np.any(~np.isfinite(alpha)) or np.any(alpha < 0) or np.any(alpha > 1):
        raise ValueError(f"α must lie in [0, 1]; received {alpha.tolist()}.")
    return np.log2((alpha + epsilon) / (1.0 - alpha + epsilon))


def unwarp_alpha(x, epsilon=EPSILON):
    """The inverse of `warp_alpha`.

    Example:
    >>> round(float(unwarp_alpha(warp_alpha(0.75))), 6)
    0.75
    """
    ratio = 2.0 ** np.asarray(x, "float64")
    return np.clip((ratio * (1 + epsilon) - epsilon) / (1 + ratio), 0.0, 1.0)


def rbf_kernel(a, b, length_scales):
    """`exp(-|a - b|^2 / 2)` with each input divided by its length scale.

    Example:
    >>> rbf_kernel(np.zeros((1, 2)), np.ones((1, 2)), (1.0, 1.0)).round(4).tolist()
    [[0.3679]]
    """
    scales = np.asarray(length_scales, "float64")
    a = np.asarray(a, "float64") / scales
    b = np.asarray(b, "float64") / scales
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-0.5 * np.maximum(squared, 0.0))


def log_marginal_likelihood(x, y, length_scales, noise_variance):
    """`log N(y | 0, K + σ² I)` of standardised targets `y` at inputs `x` `[n, 2]`.

    Example:
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0]]); y = np.array([1.0, -1.0])
    >>> round(float(log_marginal_likelihood(x, y, (1.0, 1.0), 0.1)), 4)
    -3.7784
    """
    y = np.asarray(y, "float64")
    covariance = rbf_kernel(x, x, length_scales) + (noise_variance + JITTER) * np.eye(len(y))
    factor = np.linalg.cholesky(covariance)
    weights = np.linalg.solve(factor.T, np.linalg.solve(factor, y))
    return float(
        -0.5 * y @ weights - np.log(np.diag(factor)).sum() - 0.5 * len(y) * math.log(2 * math.pi)
    )


def fit_gp(x, y):
    """Standardises `y` and picks the (length scales, noise) of highest evidence.

    Args:
        x: `[n, 2]` inputs (warped α, log2 R).
        y: `[n]` finite targets.

    Returns:
        dict with `x`, `y` (standardised), `mean`, `scale` (of the targets),
        `length_scales`, `noise_variance`, `log_marginal_likelihood`.
    """
    x = np.asarray(x, "float64")
    y = np.asarray(y, "float64")
    if x.ndim != 2 or x.shape[1] != 2 or len(x) != len(y) or len(y) < 2:
        raise ValueError(
            f"fit_gp needs x of shape [n, 2] and y of shape [n] with n >= 2; received "
            f"{x.shape} and {y.shape}."
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(f"fit_gp needs finite targets; received {y.tolist()}.")
    mean, scale = float(y.mean()), float(y.std()) or 1.0
    standard = (y - mean) / scale
    best = None
    for la in LENGTH_SCALES_ALPHA:
        for lr in LENGTH_SCALES_REPETITIONS:
            for noise in NOISE_VARIANCES:
                value = log_marginal_likelihood(x, standard, (la, lr), noise)
                if best is None or value > best[0]:
                    best = (value, (la, lr), noise)
    return {
        "x": x,
        "y": standard,
        "mean": mean,
        "scale": scale,
        "length_scales": best[1],
        "noise_variance": best[2],
        "log_marginal_likelihood": best[0],
    }


def gp_posterior(fit, x_query):
    """Posterior mean `[m]` and covariance `[m, m]` of the noise-free surface, in the
    targets' units, at `x_query` `[m, 2]`."""
    x_query = np.asarray(x_query, "float64")
    covariance = rbf_kernel(fit["x"], fit["x"], fit["length_scales"])
    covariance += (fit["noise_variance"] + JITTER) * np.eye(len(fit["y"]))
    factor = np.linalg.cholesky(covariance)
    cross = rbf_kernel(fit["x"], x_query, fit["length_scales"])
    solved = np.linalg.solve(factor, cross)
    mean = solved.T @ np.linalg.solve(factor, fit["y"])
    prior = rbf_kernel(x_query, x_query, fit["length_scales"])
    posterior = prior - solved.T @ solved
    return fit["mean"] + fit["scale"] * mean, fit["scale"] ** 2 * posterior


def _draws(mean, covariance, num_draws, rng):
    """Joint posterior draws `[num_draws, m]` (eigen-decomposition: robust to a
    covariance that is only positive semi-definite in floating point)."""
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    return mean + rng.standard_normal((num_draws, len(mean))) @ root.T


def optimal_alpha(results, metric="final_ar_loss", **options):
    """Best α per R of a study's `metric`, from a GP fit over every (α, R, seed) cell.

    Args:
        results: `CellResult`s (any number of seeds per cell; at least 2 cells).
        metric: one of `keras_dualobj.study.seeds.METRICS` (lower is better).
        **options: of `optimal_alpha_from_points`.

    Returns:
        `optimal_alpha_from_points`'s dict with `metric` added.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; accepted are {list(METRICS)}.")
    cells = [r for r in results if math.isfinite(metric_value(r, metric))]
    analysis = optimal_alpha_from_points(
        [c.ar_fraction for c in cells],
        [c.repetitions for c in cells],
        [getattr(c, metric) for c in cells],
        **options,
    )
    return {"metric": metric, **analysis}


def _alpha_list(alphas):
    return ", ".join(format_fraction(a) for a in sorted(alphas))


def alpha_coverage(ar_fractions, repetitions, at_repetitions):
    """Why the GP cannot place a best α at each R of `at_repetitions` (`None` where it can).

    A measured R needs `MIN_ALPHAS_PER_REPETITION` distinct α (see its comment); an R
    between two measured ones is interpolated from both, so both need them.

    Example:
    >>> reasons = alpha_coverage([0.5, 1, 0.25, 0.5, 1], [1, 1, 4, 4, 4], [1, 2, 4])
    >>> reasons[1], reasons[4]
    ('2 α at R = 1 (1/2, 1); needs >= 3', None)
    >>> reasons[2]
    'interpolated from 2 α at R = 1 (1/2, 1); needs >= 3'
    """
    measured = {}
    for alpha, r in zip(ar_fractions, repetitions):
        measured.setdefault(r, set()).add(float(alpha))
    levels = sorted(measured)
    short = {
        r: f"{len(alphas)} α at R = {r:g} ({_alpha_list(alphas)})"
        for r, alphas in measured.items() if len(alphas) < MIN_ALPHAS_PER_REPETITION
    }
    needs = f"; needs >= {MIN_ALPHAS_PER_REPETITION}"
    reasons = {}
    for r in at_repetitions:
        if r in measured:
            reasons[r] = short[r] + needs if r in short else None
            continue
        neighbours = (max(m for m in levels if m < r), min(m for m in levels if m > r))
        missing = [short[m] for m in neighbours if m in short]
        reasons[r] = "interpolated from " + " and ".join(missing) + needs if missing else None
    return reasons


def more_alphas_flags(ar_fractions):
    """`--ar-fractions ...` of a grid with >= 3 α on each face: the study's α and 1/4, 1/2, 3/4.

    Example:
    >>> more_alphas_flags([0, 0.5, 1])
    '--ar-fractions 0 1/4 1/2 3/4 1'
    """
    fractions = sorted({float(a) for a in ar_fractions} | {0.25, 0.5, 0.75})
    return "--ar-fractions " + " ".join(format_fraction(a) for a in fractions)


def _posterior_row(fit, grid_x, dense_x, repetitions, num_draws, rng):
    """Best α, interval and `P(α optimal)` at one R (see `optimal_alpha_from_points`)."""
    points = np.concatenate([grid_x, dense_x])
    query = np.stack([points, np.full(len(points), math.log2(repetitions))], axis=1)
    mean, covariance = gp_posterior(fit, query)
    draws = _draws(mean, covariance, num_draws, rng)
    grid_draws, dense_draws = draws[:, : len(grid_x)], draws[:, len(grid_x) :]
    winners = np.bincount(grid_draws.argmin(1), minlength=len(grid_x)) / num_draws
    dense_best = unwarp_alpha(dense_x[dense_draws.argmin(1)])
    dense_mean = mean[len(grid_x) :]
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return {
        "best_alpha": float(unwarp_alpha(dense_x[int(np.argmin(dense_mean))])),
        "interval": (float(np.quantile(dense_best, 0.05)), float(np.quantile(dense_best, 0.95))),
        "probabilities": winners.tolist(),
        "grid_mean": mean[: len(grid_x)].tolist(),
        "grid_std": std[: len(grid_x)].tolist(),
        "dense_alpha": unwarp_alpha(dense_x).tolist(),
        "dense_mean": dense_mean.tolist(),
        "dense_std": std[len(grid_x) :].tolist(),
    }


def optimal_alpha_from_points(ar_fractions, repetitions, values, num_draws=4000, dense=201,
                              seed=0, at_repetitions=None):
    """Best α per R of observations `values` (lower is better) at (α, R) points.

    Args:
        ar_fractions, repetitions, values: one entry per observation (a cell and
            seed), all finite.
        num_draws: joint posterior draws for the interval and the probabilities.
        dense: α points (evenly spaced in the warped α) for the best α and interval.
        seed: of the posterior draws (the analysis is deterministic given it).
        at_repetitions: R values to analyse (default: the observed ones); each within
            the observed range (the fit interpolates in log2 R, never extrapolates).

    Returns:
        dict with `fit` (hyperparameters; `None` when no R is judged), `ar_fractions`
        (the grid's α) and `per_repetition`: `{R: {"best_alpha", "interval": (low,
        high), "probabilities": [P(α optimal) per grid α], "grid_mean", "grid_std",
        "dense_alpha", "dense_mean", "dense_std"}}`, or `{R: {"not_judged": why}}` at
        an R with too few α (`alpha_coverage`); when no R is judged, also
        `not_judged`, why, and nothing is fitted.

    Example:
    >>> alphas = [0, 0.5, 1] * 2; rs = [1, 1, 1, 16, 16, 16]
    >>> losses = [3.0, 2.0, 2.5, 3.0, 2.0, 2.8]
    >>> result = optimal_alpha_from_points(alphas, rs, losses, num_draws=500)
    >>> [max(range(3), key=row["probabilities"].__getitem__)
    ...  for row in result["per_repetition"].values()]
    [1, 1]
    >>> optimal_alpha_from_points([0.5, 1], [1, 1], [2.0, 2.1])["per_repetition"]
    {1: {'not_judged': '2 α at R = 1 (1/2, 1); needs >= 3'}}
    """
    if not (len(ar_fractions) == len(repetitions) == len(values)):
        raise ValueError(
            "The GP analysis needs as many α and R as values; received "
            f"{len(ar_fractions)} α, {len(repetitions)} R, {len(values)} values."
        )
    fractions = sorted(set(float(a) for a in ar_fractions))
    measured = sorted(set(repetitions))
    if at_repetitions is None:
        at_repetitions = measured
    outside = [r for r in at_repetitions if not measured or not measured[0] <= r <= measured[-1]]
    if outside:
        raise ValueError(
            f"R {outside} lie outside the study's R range {measured}; the GP "
            "interpolates, it does not extrapolate."
        )
    reasons = alpha_coverage(ar_fractions, repetitions, sorted(set(at_repetitions)))
    if all(reasons.values()):
        return {
            "fit": None, "ar_fractions": fractions,
            "not_judged": (f"{len(values)} observations, {len(fractions)} distinct α"
                           + (f" ({_alpha_list(fractions)})" if fractions else "")
                           + f"; the GP needs >= {MIN_ALPHAS_PER_REPETITION} at an R"),
            "per_repetition": {r: {"not_judged": reasons[r]} for r in sorted(reasons)},
        }
    x = np.stack([warp_alpha(ar_fractions), np.log2(np.asarray(repetitions, "float64"))], axis=1)
    fit = fit_gp(x, values)
    grid_x = warp_alpha(fractions)
    dense_x = np.linspace(grid_x.min(), grid_x.max(), dense)
    rng = np.random.default_rng(seed)
    per_repetition = {
        r: {"not_judged": reasons[r]} if reasons[r]
        else _posterior_row(fit, grid_x, dense_x, r, num_draws, rng)
        for r in sorted(reasons)
    }
    summary = {k: v for k, v in fit.items() if k not in ("x", "y")}
    return {"fit": summary, "ar_fractions": fractions, "per_repetition": per_repetition}
