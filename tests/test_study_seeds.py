"""A multi-seed study end to end: 2 α x 2 R x 2 seeds of the `nano` preset, resumed,
then scored on the held-out multiple-choice task and analysed from the command line."""

import json
import shutil

import numpy as np
import pytest

from keras_dualobj.cli import main
from keras_dualobj.study import StudyConfig
from keras_dualobj.study import plan_cells
from keras_dualobj.study import recommend_ar_fraction
from keras_dualobj.study import run_study
from keras_dualobj.study.folder import load_study_config
from keras_dualobj.study.results import read_results

# 4 steps of 16 x 64 tokens per cell, on the built-in corpus.
GRID = dict(
    ar_fractions=(0.5, 1.0),
    repetitions=(1, 2),
    token_budget=4 * 16 * 64,
    seeds=(0, 1),
    preset="nano",
    source="builtin",
    evaluations=2,
    evaluation_batches=2,
    elbo_samples=1,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("seeded")
    results = run_study(StudyConfig(**GRID), study_dir)
    return study_dir, results


@pytest.mark.backend_independent
def test_seeds_plan_seed_major_cells_named_by_seed():
    cells = plan_cells(StudyConfig(**GRID))
    assert [(c.seed, c.repetitions, c.ar_fraction) for c in cells[:4]] == [
        (0, 1, 0.5), (0, 1, 1.0), (0, 2, 0.5), (0, 2, 1.0)]
    assert [c.seed for c in cells] == [0] * 4 + [1] * 4
    assert cells[-1].key == "alpha1_R2_seed1"
    # Without `seeds` the cells keep their single-seed names (older folders resume).
    single = plan_cells(StudyConfig(**{**GRID, "seeds": None, "seed": 3}))
    assert [c.key for c in single][:1] == ["alpha0.5_R1"] and {c.seed for c in single} == {3}
    assert "seeds" not in StudyConfig(**{**GRID, "seeds": None}).to_json()


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "seeds, error, message",
    [((), ValueError, "at least one seed"), ("01", TypeError, "seeds must be a list"),
     ((0, -1), ValueError, "seeds")],
)
def test_bad_seeds_are_refused(seeds, error, message):
    with pytest.raises(error, match=message):
        StudyConfig(**{**GRID, "seeds": seeds})


@pytest.mark.end_to_end("torch")
def test_every_seed_trains_its_own_model_on_the_same_held_out_rows(study, capsys):
    study_dir, results = study
    assert len(results) == 8 and sorted({r.seed for r in results}) == [0, 1]
    for seed in (0, 1):
        run = json.loads((study_dir / "cells" / f"alpha0.5_R1_seed{seed}" / "run.json").read_text())
        assert run["config"]["seed"] == seed
    by_seed = {(r.ar_fraction, r.repetitions, r.seed): r.final_ar_loss for r in results}
    # Another initialisation and data order: other losses, but of the same size.
    assert by_seed[(0.5, 1, 0)] != by_seed[(0.5, 1, 1)]
    assert abs(by_seed[(0.5, 1, 0)] - by_seed[(0.5, 1, 1)]) < 0.5
    summary = (study_dir / "summary.txt").read_text()
    assert "mean ± sample std over seeds [0, 1]" in summary
    # The summary shows the best α's mean at each R (whichever α it is here).
    best_mean = min(np.mean([by_seed[(a, 1, 0)], by_seed[(a, 1, 1)]]) for a in (0.5, 1.0))
    assert f"{best_mean:.3f}±" in summary
    assert load_study_config(study_dir) == StudyConfig(**GRID)
    capsys.readouterr()
    run_study(StudyConfig(**GRID), study_dir)  # every cell finished: nothing retrains
    assert "8 already finished" in capsys.readouterr().out


@pytest.mark.end_to_end("torch")
def test_cells_are_scored_and_analysed_from_the_command_line(study, capsys):
    study_dir, results = study
    code = main(["study", "--output", str(study_dir), "--analyse-only", "--multiple-choice",
                 "--choice-examples", "8", "--choice-samples", "1"])
    assert code == 0
    rows = (study_dir / "multiple_choice.csv").read_text().splitlines()
    assert rows[0] == "ar_fraction,repetitions,seed,ar_accuracy,prefix_accuracy,md_accuracy,md_elbo_accuracy"
    assert len(rows) == 9
    for row in rows[1:]:
        accuracies = [float(v) for v in row.split(",")[3:]]
        # 8 examples: accuracies are multiples of 1/8.
        assert all(0 <= a <= 1 and (a * 8) == int(a * 8) for a in accuracies), row
    analysis = json.loads((study_dir / "gp_analysis.json").read_text())
    assert {"AR loss", "MD PLL", "MD ELBO", "ar choice error", "md choice error",
            "md_elbo choice error"} <= set(analysis)
    # Two α (1/2, 1) on the AR face, one on the MD face: too few for a best α from the GP
    # (test_study_judging.py covers the judged and not-judged paths without training).
    assert analysis["AR loss"]["per_repetition"]["1"] == {"not_judged": "2 α at R = 1 (1/2, 1); needs >= 3"}
    assert analysis["MD ELBO"]["fit"] is None
    text = (study_dir / "analysis.txt").read_text()
    assert "GP fit" in text and "AR loss: not judged" in text
    assert "(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap): NOT JUDGED" in text
    assert (study_dir / "gp_best_alpha.png").read_bytes().startswith(b"\x89PNG")
    # A second scoring of the same task reads the cells' stored accuracies back.
    stamp = (study_dir / "cells" / "alpha1_R2_seed1" / "multiple_choice.json").stat().st_mtime_ns
    main(["study", "--output", str(study_dir), "--analyse-only", "--multiple-choice",
          "--choice-examples", "8", "--choice-samples", "1"])
    assert (study_dir / "cells" / "alpha1_R2_seed1" / "multiple_choice.json").stat().st_mtime_ns == stamp


@pytest.mark.end_to_end("torch")
def test_a_study_written_before_the_pll_is_completed_from_its_saved_models(study, tmp_path, capsys):
    from keras_dualobj.study.cell_multiple_choice import _legacy_digest
    from keras_dualobj.study.cell_multiple_choice import study_examples

    study_dir, results = study
    old = tmp_path / "old"
    shutil.copytree(study_dir, old, ignore=shutil.ignore_patterns("multiple_choice*"))
    # As an older version wrote it: no PLL in the results, "md" meant the ELBO score.
    # Two of its cells (those of seed 0 at R = 1) keep the test short.
    kept = [row for row in json.loads((old / "results.json").read_text())
            if (row["repetitions"], row["seed"]) == (1, 0)]
    for row in kept:
        del row["final_md_pll"]
    (old / "results.json").write_text(json.dumps(kept))
    examples = study_examples(old, num_examples=8)
    (old / "cells" / "alpha0.5_R1_seed0" / "multiple_choice.json").write_text(json.dumps({
        "examples": _legacy_digest(examples, ("ar", "prefix", "md"), 1),
        "accuracy": {"ar": 0.125, "prefix": 0.25, "md": 0.375}}))
    assert main(["study", "--output", str(old), "--analyse-only", "--multiple-choice",
                 "--choice-examples", "8", "--choice-samples", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("scored from model.keras (results predate it)") == 2
    assert "[multiple choice] alpha0.5_R1_seed0: scored md (kept ar, md_elbo, prefix)" in out
    # The same deterministic score as the one measured when the cells were trained.
    recomputed = {(r.ar_fraction, r.repetitions, r.seed): r.final_md_pll for r in read_results(old)}
    assert len(recomputed) == 2
    for result in [r for r in results if (r.repetitions, r.seed) == (1, 0)]:
        assert recomputed[(result.ar_fraction, result.repetitions, result.seed)] == pytest.approx(
            result.final_md_pll, rel=1e-5)
    row = next(line for line in (old / "multiple_choice.csv").read_text().splitlines()
               if line.startswith("0.5,1,0,"))
    assert row.split(",")[3:5] == ["0.125", "0.25"] and row.split(",")[6] == "0.375"
    assert "NOT MEASURED" not in (old / "analysis.txt").read_text()


@pytest.mark.end_to_end("torch")
def test_recommend_uses_the_seed_means_and_says_why_the_gp_is_not_judged(study):
    study_dir, results = study
    recommendation = recommend_ar_fraction(2, study_dir)
    means = {a: np.mean([r.final_ar_loss for r in results if (r.ar_fraction, r.repetitions) == (a, 2)])
             for a in (0.5, 1.0)}
    assert recommendation["measured_ar_loss"] == min(means, key=means.get)
    assert recommendation["measured_ar_loss_value"] == pytest.approx(min(means.values()))
    between = recommend_ar_fraction(1.5, study_dir)  # interpolated: no grid cell at 1.5
    assert "measured_ar_loss" not in between and "gp_ar_loss" not in between
    assert between["gp_ar_loss_not_judged"] == (
        "interpolated from 2 α at R = 1 (1/2, 1) and 2 α at R = 2 (1/2, 1); needs >= 3")
    with pytest.raises(ValueError, match="no cells at R = 4"):
        recommend_ar_fraction(4, study_dir)


@pytest.mark.backend_independent
def test_the_regime_refuses_a_corpus_too_small_for_it(tmp_path, capsys):
    code = main(["study", "--regime", "paper", "--source", "builtin", "--output", str(tmp_path / "r")])
    assert code == 2
    error = capsys.readouterr().err
    assert "nano: U = 589,824 at R = 1 >" in error and "corpus tokens" in error


@pytest.mark.backend_independent
def test_the_command_line_passes_seeds_to_the_study():
    from keras_dualobj.cli import build_parser
    from keras_dualobj.cli.study import study_config

    args = build_parser().parse_args(
        ["study", "--quick", "--seeds", "2", "0", "--preset", "nano", "--output", "unused"])
    config = study_config(args)
    assert config.seeds == (0, 2) and config.recipe.preset == "nano"
    assert study_config(build_parser().parse_args(["study", "--output", "unused"])).seeds is None
