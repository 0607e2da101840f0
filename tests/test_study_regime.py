"""The regime-matched study's maths: regime sizes, seed statistics, the GP analysis and
the held-out multiple-choice task (pure functions, recomputed with NumPy; no training)."""

import math

import numpy as np
import pytest

from keras_dualobj.models.presets import get_preset
from keras_dualobj.study import gp_analysis
from keras_dualobj.study import regime
from keras_dualobj.study.cell_multiple_choice import continuation_examples
from keras_dualobj.study.findings import findings_text
from keras_dualobj.study.results import CellResult
from keras_dualobj.study.seeds import compare_cells
from keras_dualobj.study.seeds import mean_results
from keras_dualobj.study.seeds import seed_statistics

# NumPy, files and text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def _cell(alpha, repetitions, seed, ar, md=None, best=None):
    md = ar + 0.5 if md is None else md
    return CellResult(alpha, repetitions, 100, 400, 10, seed, ar, ar if best is None else best,
                      1.0, md, md, ar, 1.0, curve=[{"step": 1, "epoch": 1.0, "ar_loss": ar, "md_elbo": md}])


def test_regime_keeps_the_papers_tokens_per_non_embedding_parameter():
    # NumPy recomputation of N from the preset's shapes (q, k, v, o; SwiGLU; norms).
    backbone = get_preset("paper-470m")["backbone"]
    d, f, layers = backbone["hidden_dim"], backbone["intermediate_dim"], backbone["num_layers"]
    paper_n = layers * (4 * d * d + 3 * d * f + 2 * d) + d
    assert regime.paper_tokens_per_parameter() == pytest.approx(2**35 / paper_n)
    nano = get_preset("nano")
    plan = regime.preset_regime("nano", (1, 4, 16, 64))
    d, f = nano["backbone"]["hidden_dim"], nano["backbone"]["intermediate_dim"]
    assert plan["num_parameters"] == 2 * (4 * d * d + 3 * d * f + 2 * d) + d
    granule = 16 * 64 * 64
    assert plan["token_budget"] % granule == 0
    # The nearest whole-epoch C: within half a granule of the paper's ratio.
    target = 2**35 / paper_n * plan["num_parameters"]
    assert abs(plan["token_budget"] - target) <= granule / 2
    for row in regime.regime_rows(plan["num_parameters"], plan["token_budget"], (1, 4, 16, 64)):
        assert row["unique_tokens"] * row["repetitions"] == plan["token_budget"]
        assert row["unique_per_parameter"] == pytest.approx(row["paper_unique_per_parameter"], rel=0.05)


def test_regime_plan_picks_the_largest_preset_that_fits():
    big = regime.regime_plan(10**9, (1, 4), 8, 10**15)
    assert big["preset"] == "small" and big["rejected"] == {}
    small = regime.regime_plan(1_000_000, (1, 4), 8, 10**15)
    assert small["preset"] == "nano" and set(small["rejected"]) == {"tiny", "small"}
    budget = regime.regime_plan(10**9, (1, 4), 8, 20 * 10**6)
    assert budget["preset"] == "nano" and "budget" in budget["rejected"]["tiny"]
    with pytest.raises(ValueError, match="nano: U = .* > 1,000 corpus tokens"):
        regime.regime_plan(1_000, (1, 4), 8, 10**15)
    with pytest.raises(ValueError, match="tokens_per_parameter"):
        regime.regime_token_budget(10, 64, (1,), tokens_per_parameter=-1.0)
    with pytest.raises(ValueError, match="repetitions"):
        regime.regime_token_budget(10, 64, ())
    assert regime.predict_study_seconds(2, 10, 0.5, 1.0) == 12.0


def test_seed_statistics_and_comparisons_match_numpy():
    values = {0: [2.0, 2.6], 1: [2.1, 2.9], 2: [1.9, 2.7]}
    cells = [_cell(a, 4, s, values[s][i]) for s in values for i, a in enumerate((0.5, 1.0))]
    stats = seed_statistics(cells)
    for i, alpha in enumerate((0.5, 1.0)):
        column = np.array([values[s][i] for s in values])
        assert stats[(alpha, 4)]["mean"] == pytest.approx(column.mean())
        assert stats[(alpha, 4)]["std"] == pytest.approx(column.std(ddof=1))
    comparison = compare_cells(stats, (0.5, 4), (1.0, 4))
    assert comparison["paired"] == pytest.approx([-0.6, -0.8, -0.8])
    assert comparison["beyond_spread"]
    # One seed disagreeing in sign: not beyond the spread, whatever the means say.
    flipped = cells + [_cell(0.5, 8, 0, 2.0), _cell(1.0, 8, 0, 2.5), _cell(0.5, 8, 1, 2.6), _cell(1.0, 8, 1, 2.4)]
    assert not compare_cells(seed_statistics(flipped), (0.5, 8), (1.0, 8))["beyond_spread"]
    merged = {(r.ar_fraction, r.repetitions): r for r in mean_results(cells)}
    assert merged[(1.0, 4)].final_ar_loss == pytest.approx(np.mean([2.6, 2.9, 2.7]))
    assert merged[(1.0, 4)].curve[0]["ar_loss"] == pytest.approx(np.mean([2.6, 2.9, 2.7]))
    with pytest.raises(ValueError, match="seed=0"):
        seed_statistics(cells + [_cell(0.5, 4, 0, 1.0)])
    with pytest.raises(ValueError, match="Unknown metric 'loss'"):
        seed_statistics(cells, "loss")


def _direct_posterior(x, y, x_query, length_scales, noise):
    """The GP posterior by explicit inverses (the textbook formulas)."""
    def k(a, b):
        diff = (a[:, None, :] - b[None, :, :]) / np.asarray(length_scales)
        return np.exp(-0.5 * (diff**2).sum(-1))

    inverse = np.linalg.inv(k(x, x) + (noise + gp_analysis.JITTER) * np.eye(len(x)))
    mean = k(x_query, x) @ inverse @ y
    covariance = k(x_query, x_query) - k(x_query, x) @ inverse @ k(x, x_query)
    sign, logdet = np.linalg.slogdet(k(x, x) + (noise + gp_analysis.JITTER) * np.eye(len(x)))
    evidence = -0.5 * y @ inverse @ y - 0.5 * logdet - 0.5 * len(y) * math.log(2 * math.pi)
    return mean, covariance, evidence


def test_gp_fit_and_posterior_match_a_numpy_recomputation():
    rng = np.random.default_rng(0)
    x = np.stack([gp_analysis.warp_alpha(rng.uniform(0, 1, 12)), np.log2(rng.choice([1, 4, 16], 12))], 1)
    y = np.sin(x[:, 0] / 3) + 0.1 * x[:, 1] + rng.normal(0, 0.05, 12)
    fit = gp_analysis.fit_gp(x, y)
    standard = (y - y.mean()) / y.std()
    # The chosen hyperparameters have the highest evidence of the whole search grid.
    evidences = [
        _direct_posterior(x, standard, x[:1], (la, lr), noise)[2]
        for la in gp_analysis.LENGTH_SCALES_ALPHA
        for lr in gp_analysis.LENGTH_SCALES_REPETITIONS
        for noise in gp_analysis.NOISE_VARIANCES
    ]
    assert fit["log_marginal_likelihood"] == pytest.approx(max(evidences), rel=1e-6)
    query = np.stack([np.linspace(-6, 6, 7), np.full(7, 2.0)], 1)
    mean, covariance = gp_analysis.gp_posterior(fit, query)
    direct_mean, direct_covariance, _ = _direct_posterior(
        x, standard, query, fit["length_scales"], fit["noise_variance"]
    )
    np.testing.assert_allclose(mean, y.mean() + y.std() * direct_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(covariance, y.var() * direct_covariance, atol=1e-8)
    np.testing.assert_allclose(gp_analysis.unwarp_alpha(gp_analysis.warp_alpha([0, 0.3, 1])), [0, 0.3, 1])


def test_optimal_alpha_finds_a_known_minimum_per_repetition():
    # A surface whose best α moves from 3/4 (R = 1) to 1/4 (R = 16), 2 seeds of noise.
    rng = np.random.default_rng(1)
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    truth = {1: 0.75, 16: 0.25}
    points = [(a, r, 2.0 + 2.0 * (a - truth[r]) ** 2 + rng.normal(0, 0.005)) for r in truth for a in alphas for _ in range(2)]
    result = gp_analysis.optimal_alpha_from_points(*zip(*points), num_draws=2000)
    for r, best in truth.items():
        row = result["per_repetition"][r]
        assert row["interval"][0] <= best <= row["interval"][1]
        assert abs(row["best_alpha"] - best) < 0.1
        assert sum(row["probabilities"]) == pytest.approx(1.0)
        assert int(np.argmax(row["probabilities"])) == alphas.index(best)
    with pytest.raises(ValueError, match="outside the study's R range"):
        gp_analysis.optimal_alpha_from_points(*zip(*points), at_repetitions=[64])
    with pytest.raises(ValueError, match=r"α must lie in \[0, 1\]"):
        gp_analysis.warp_alpha([1.5])
    with pytest.raises(ValueError, match="finite targets"):
        gp_analysis.fit_gp(np.zeros((2, 2)), [1.0, float("nan")])
    with pytest.raises(ValueError, match="as many α and R as values"):
        gp_analysis.optimal_alpha_from_points([0.5, 1.0], [1], [2.0])
    # One observation: nothing to fit, and it says so.
    single = gp_analysis.optimal_alpha_from_points([0.5], [1], [2.0])
    assert single["fit"] is None and single["per_repetition"] == {1: {"not_judged": "1 α at R = 1 (1/2); needs >= 3"}}


def test_findings_are_judged_against_the_seed_spread():
    # α = 1/2 beats both ends at both R on the AR loss, beyond 2 seeds' spread; pure AR
    # overfits at R = 16 (final 0.6 above its best), the mixed cell does not.
    cells = []
    for seed in (0, 1):
        noise = 0.01 * seed
        for r in (1, 16):
            cells += [
                _cell(0.0, r, seed, 3.0 + noise, md=2.5 + noise),
                _cell(0.5, r, seed, 2.0 + noise, md=2.45 + noise),
                _cell(1.0, r, seed, 2.6 + noise, md=5.0, best=2.0 if r == 16 else None),
            ]
    analyses = {
        "AR loss": gp_analysis.optimal_alpha([c for c in cells if c.ar_fraction > 0], "final_ar_loss", num_draws=500),
        "MD ELBO": gp_analysis.optimal_alpha([c for c in cells if c.ar_fraction < 1], "final_md_elbo", num_draws=500),
    }
    lines = findings_text(cells, analyses).splitlines()
    assert lines[0].startswith("The paper's metrics first") and lines[1].endswith("AR loss: REPRODUCED")
    assert any("MD ELBO: REPRODUCED" in line for line in lines)
    assert any(line.startswith("(2) dual resists overfitting (pure AR") and "REPRODUCED: final - best = 0.605±0.007 at α = 1 vs 0.000" in line
               for line in lines)
    assert any(line.startswith("(3)") for line in lines)
    # MD-mode choice: α = 1/2 right 60% (+ seed), the ends 40%: mixing wins there too.
    choices = [{"ar_fraction": c.ar_fraction, "repetitions": c.repetitions, "seed": c.seed,
                "ar_accuracy": 0.5, "md_accuracy": (0.6 if c.ar_fraction == 0.5 else 0.4) + 0.01 * c.seed}
               for c in cells]
    with_choices = findings_text(cells, analyses, choices).splitlines()
    assert "(1) mixing beats both ends, on the md-mode (PLL) multiple-choice error: REPRODUCED" in with_choices
    assert "(1) mixing beats both ends, on the ar-mode multiple-choice error: NOT REPRODUCED" in with_choices
    # No md_elbo column in these rows: that face is reported as not measured.
    assert ("(1) mixing beats both ends, on the md_elbo-mode multiple-choice error: NOT MEASURED "
            "(results written before it; `keras-dualobj study --output DIR --analyse-only "
            "--multiple-choice` scores it from each cell's model.keras)") in with_choices
    one_seed = findings_text([c for c in cells if c.seed == 0], {}).splitlines()
    assert one_seed[1].endswith("AR loss: NOT JUDGED (one seed: no spread to judge against; "
                                "needs >= 2 seeds: --seeds 0 1 2)")


def test_continuation_examples_come_from_one_document_and_other_ones():
    rows, length = 12, 20
    ids = np.arange(rows * length).reshape(rows, length) % 250 + 5
    documents = np.repeat(np.arange(rows)[:, None], length, 1)
    documents[3, 5:] = 99  # row 3: its first window of 8 tokens starts at 5
    examples = continuation_examples(ids, documents, num_examples=10, context_length=5,
                                     continuation_length=3, num_choices=3, seed=2)
    assert len(examples) == 10
    labels = [e["label"] for e in examples]
    assert len(set(labels)) > 1  # the true choice is not always first
    for example in examples:
        context, choices = example["context"], example["choices"]
        row, start = np.argwhere(ids == context[0])[0]
        assert ids[row, start : start + 8].tolist() == context + choices[example["label"]]
        assert len(choices) == 3 and all(len(c) == 3 for c in choices)
        assert len({tuple(c) for c in choices}) == 3
    assert examples[3]["context"] == ids[3, 5:10].tolist()
    with pytest.raises(ValueError, match="Only 12 held-out rows"):
        continuation_examples(ids, documents, num_examples=50, context_length=5, continuation_length=3)
    with pytest.raises(ValueError, match="num_choices"):
        continuation_examples(ids, documents, num_choices=1)
    with pytest.raises(ValueError, match="one shape"):
        continuation_examples(ids, documents[:, :4])
