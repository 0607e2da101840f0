"""The repetition study: grid bookkeeping, outputs, resume, recommendations."""

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_dualobj.models.presets import get_preset
from keras_dualobj.study import StudyConfig
from keras_dualobj.study import paper_ar_fraction
from keras_dualobj.study import plan_cells
from keras_dualobj.study import read_results
from keras_dualobj.study import recommend_ar_fraction
from keras_dualobj.study import run_study
from keras_dualobj.study.results import CSV_FIELDS
from keras_dualobj.study.results import format_fraction

from conftest import one_thread_environment

# 8 steps of 16 x 64 tokens per cell, on the built-in corpus, with the tiny preset.
TINY = dict(
    ar_fractions=(0.0, 1.0),
    repetitions=(1, 2),
    token_budget=8 * 16 * 64,
    preset="tiny",
    source="builtin",
    sequence_length=64,
    batch_size=16,
    evaluations=2,
    evaluation_batches=2,
    elbo_samples=1,
)


def _layout(lines):
    """A `summary.txt` less its numbers: no rows, one α header, counts as N."""
    layout = []
    for line in lines:
        if re.fullmatch(r" *\d+ \|.*", line):
            continue  # a row of losses
        if re.fullmatch(r"  R \|[ \d/]+", line):
            line = "  R | α ..."  # the grid's α
        layout.append(re.sub(r"\d+", "N", line))
    return layout


def _documented_summaries():
    """The `summary.txt` samples of docs/study.md (its first table alone, or whole) with
    the MD PLL column; those recorded before it (labelled so on the page) are left out."""
    page = (Path(__file__).parents[1] / "docs" / "study.md").read_text()
    return [block.splitlines() for block in re.findall(r"```text\n(.*?)```", page, re.S)
            if block.startswith("Held-out losses (nats/token); 'vs' columns")
            and "best α (MD PLL)" in block]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("study")
    results = run_study(StudyConfig(**TINY), study_dir)
    return study_dir, results


@pytest.mark.backend_independent
def test_cells_share_budget_steps_and_seed():
    config = StudyConfig(
        ar_fractions=(1.0, 0.5, 0.0, 0.5),
        repetitions=(4, 1, 16),
        token_budget=16 * 32 * 128,
        seed=3,
    )
    cells = plan_cells(config)
    assert len(cells) == 3 * 3  # duplicates removed
    assert {(c.unique_tokens * c.repetitions) for c in cells} == {config.token_budget}
    assert {c.num_steps for c in cells} == {16}
    assert {c.seed for c in cells} == {3}
    assert [c.repetitions for c in cells] == [1, 1, 1, 4, 4, 4, 16, 16, 16]
    # The recipe defaults to the preset's (recorded concretely in study.json).
    training = get_preset("small")["training"]
    assert (config.recipe.optimizer, config.recipe.learning_rate) == (training["optimizer"], training["learning_rate"])


@pytest.mark.backend_independent
def test_recipe_settings_are_read_from_the_recipe_only():
    config = StudyConfig((0.0, 1.0), (1, 4), token_budget=4 * 16 * 64, preset="tiny")
    assert (config.recipe.preset, config.recipe.batch_size) == ("tiny", 16)
    # No fall-through to the recipe: a misspelt or recipe name fails where it is read.
    for name in ("preset", "batch_size", "elbo_samples", "ar_fractons"):
        with pytest.raises(AttributeError, match=f"'StudyConfig' object has no attribute '{name}'"):
            getattr(config, name)


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"token_budget": 3 * 32 * 128, "repetitions": (1, 2)}, "multiple of"),
        ({"token_budget": 1000}, "multiple of"),
        ({"ar_fractions": (0.5, 1.5)}, "ar_fractions"),
        ({"repetitions": (0,)}, "repetitions"),
        ({"ar_fractions": ()}, "at least one"),
        ({"preset": "huge"}, "Unknown preset 'huge'"),
        ({"accumulation_steps": 2}, "accumulation_steps must be 1.*received accumulation_steps=2"),
    ],
)
def test_bad_grids_are_refused(overrides, message):
    arguments = dict(ar_fractions=(0.0, 1.0), repetitions=(1, 4), token_budget=8 * 32 * 128)
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        StudyConfig(**arguments)


@pytest.mark.end_to_end("torch")
def test_outputs_have_the_documented_schema(study):
    study_dir, results = study
    with open(study_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and list(rows[0]) == CSV_FIELDS
    for row in rows:
        assert int(row["unique_tokens"]) * int(row["repetitions"]) == TINY["token_budget"]
        assert int(row["num_steps"]) == 8 and int(row["seed"]) == 0
        # Byte tokens (272 ids): a model guessing uniformly scores log(272) = 5.61 nats;
        # 8 steps learn the byte frequencies (~3.2 here) but cannot reach 1 nat/byte.
        for name in ("final_ar_loss", "best_ar_loss", "final_md_elbo", "final_prefix_loss",
                     "final_ar_suffix_loss"):
            assert 1.0 < float(row[name]) < 4.6, (name, row[name])
    stored = json.loads((study_dir / "results.json").read_text())
    assert all(len(cell["curve"]) == 2 for cell in stored)
    for cell in stored:
        curve_ar = [point["ar_loss"] for point in cell["curve"]]
        assert curve_ar[1] < curve_ar[0], cell["curve"]  # training lowered the loss
        assert cell["best_ar_loss"] == pytest.approx(min(curve_ar))
        assert cell["final_ar_loss"] == pytest.approx(curve_ar[-1])
    assert [c.key for c in read_results(study_dir)] == [r.key for r in results]
    for name in ("loss_vs_alpha", "md_elbo_vs_alpha", "heatmap_ar_loss", "training_curves"):
        png = (study_dir / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000
    lines = (study_dir / "summary.txt").read_text().splitlines()
    assert "32 held-out rows of 64 tokens" in lines[1] and "masks per row: 1" in lines[1]
    body = lines[lines.index(next(line for line in lines if line.startswith("  R |"))) + 1 :]
    body = body[: body.index("")]
    assert [line.split("|")[0].strip() for line in body] == ["1", "2"]
    assert body[0].rstrip().endswith("63/64")
    _assert_best_alphas(body, results)
    # Prefix-LM against AR on the same tokens (each row's second half), per R and α.
    comparison = lines[lines.index(next(line for line in lines if line.startswith("Prefix-LM vs AR"))):]
    by_cell = {(r.repetitions, r.ar_fraction): r for r in results}
    assert comparison[-2:] == [
        f"{repetitions:>3} | " + " ".join(
            f"{by_cell[(repetitions, a)].final_prefix_loss - by_cell[(repetitions, a)].final_ar_suffix_loss:+6.3f}"
            for a in (0.0, 1.0))
        for repetitions in (1, 2)
    ]
    # docs/study.md shows what a study prints: each sample is (the start of) this layout.
    documented = [_layout(sample) for sample in _documented_summaries()]
    assert documented and all(sample == _layout(lines)[: len(sample)] for sample in documented), (
        _layout(lines), documented)


def _assert_best_alphas(body, results):
    """Each face's column of `summary.txt`'s rows names its lowest loss's α: the MD face's
    verdict by the PLL, the ELBO's beside it."""
    for row in body:
        cells = [r for r in results if r.repetitions == int(row.split("|")[0])]
        for column, metric in enumerate(("final_ar_loss", "final_md_pll", "final_md_elbo"), start=1):
            best = min(cells, key=lambda r: getattr(r, metric))
            assert row.split("|")[column].split("=")[0].strip() == format_fraction(best.ar_fraction), (
                metric, row)


@pytest.mark.end_to_end("torch")
def test_a_rerun_trains_only_unfinished_cells(study, capsys):
    study_dir, results = study
    untouched = {
        r.key: (study_dir / "cells" / r.key / "result.json").stat().st_mtime_ns
        for r in results[1:]
    }
    shutil.rmtree(study_dir / "cells" / results[0].key)  # as if killed before it began
    capsys.readouterr()
    rerun = run_study(StudyConfig(**TINY), study_dir)
    output = capsys.readouterr().out
    assert "3 already finished" in output
    assert output.count("[study] cell ") == 1
    for key, mtime in untouched.items():
        assert (study_dir / "cells" / key / "result.json").stat().st_mtime_ns == mtime
    # Same seed, same data: the retrained cell reproduces its losses.
    np.testing.assert_allclose(rerun[0].final_ar_loss, results[0].final_ar_loss, rtol=1e-5)
    np.testing.assert_allclose(rerun[0].final_md_elbo, results[0].final_md_elbo, rtol=1e-5)


@pytest.mark.end_to_end("torch")
def test_a_different_study_in_the_folder_is_refused(study):
    study_dir, _ = study
    with pytest.raises(ValueError, match="another configuration.*seed"):
        run_study(StudyConfig(**{**TINY, "seed": 1}), study_dir)


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "repetitions, expected",
    [
        (1, 0.984375),
        (4, 0.984375),
        (16, 0.984375),
        (20, 0.8),
        (32, 0.5),
        (64, 0.25),
        (128, 0.125),
    ],
)
def test_paper_rule(repetitions, expected):
    # The paper: 63/64 up to 16 repetitions, then AR sees about 16 of them.
    assert paper_ar_fraction(repetitions) == pytest.approx(expected, abs=1e-12)


@pytest.mark.end_to_end("torch")
def test_recommend_reads_the_measured_alpha(study):
    study_dir, results = study
    recommendation = recommend_ar_fraction(2, study_dir)
    # The expected answer straight from the results table the study wrote.
    with open(study_dir / "results.csv", newline="") as handle:
        at_two = [row for row in csv.DictReader(handle) if row["repetitions"] == "2"]
    assert sorted(float(row["ar_fraction"]) for row in at_two) == [0.0, 1.0]
    assert recommendation["md_face"] == "md_pll"  # the MD face by the PLL, the ELBO beside it
    for metric, name in (("final_ar_loss", "ar_loss"), ("final_md_pll", "md_pll"), ("final_md_elbo", "md_elbo")):
        losses = {float(row["ar_fraction"]): float(row[metric]) for row in at_two}
        lower = 0.0 if losses[0.0] < losses[1.0] else 1.0
        assert recommendation[f"measured_{name}"] == lower, (metric, losses)
        assert recommendation[f"measured_{name}_value"] == pytest.approx(losses[lower])
    assert recommendation["paper"] == 0.984375
    with pytest.raises(ValueError, match=r"no cells at R = 8.*\[1, 2\]"):
        recommend_ar_fraction(8, study_dir)
    with pytest.raises(ValueError, match="repetitions"):
        recommend_ar_fraction(0.5)


def _forget_the_pll(paths, keep=lambda row: False):
    """Rewrites results files as a version before the PLL wrote them (rows `keep` spares)."""
    for path in paths:
        stored = json.loads(path.read_text())
        for row in stored if isinstance(stored, list) else [stored]:
            if not keep(row):
                del row["final_md_pll"]
        path.write_text(json.dumps(stored))


@pytest.mark.end_to_end("torch")
def test_a_study_written_before_the_pll_is_judged_by_it_from_its_saved_models(study, tmp_path):
    study_dir, results = study
    old = tmp_path / "old"
    shutil.copytree(study_dir, old)
    _forget_the_pll([old / "results.json", *old.glob("cells/*/result.json")])
    # Rerun: every cell finished, none retrains; each one's PLL is scored from model.keras
    # before summary.txt judges the MD face by it.
    stream = io.StringIO()
    rerun = run_study(StudyConfig(**TINY), old, stream=stream)
    assert "4 already finished" in stream.getvalue()
    assert stream.getvalue().count("scored from model.keras (results predate it)") == 4
    measured = {(r.ar_fraction, r.repetitions): r.final_md_pll for r in results}
    for result in rerun:  # the same deterministic score as when the cells were trained
        assert result.final_md_pll == pytest.approx(measured[(result.ar_fraction, result.repetitions)], rel=1e-5)
    lines = (old / "summary.txt").read_text().splitlines()
    body = [line for line in lines if re.fullmatch(r" *\d+ \|.*", line)][:2]
    _assert_best_alphas(body, results)
    assert not any("judged by the MD ELBO" in line for line in lines)
    # recommend scores them too (R = 2's cells here), as `study --analyse-only` does.
    _forget_the_pll([old / "results.json"], keep=lambda row: row["repetitions"] == 1)
    stream = io.StringIO()
    recommendation = recommend_ar_fraction(2, old, stream=stream)
    assert stream.getvalue().count("scored from model.keras (results predate it)") == 2
    at_two = {a: pll for (a, r), pll in measured.items() if r == 2}
    assert recommendation["md_face"] == "md_pll"
    assert recommendation["measured_md_pll"] == min(at_two, key=at_two.get)
    assert recommendation["measured_md_pll_value"] == pytest.approx(min(at_two.values()), rel=1e-5)
    assert all(r.final_md_pll is not None for r in read_results(old))  # written back


@pytest.mark.backend_independent
def test_recommend_command():
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dualobj", "recommend", "--repetitions", "64"],
        env=one_thread_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "α = 1/4" in completed.stdout


@pytest.mark.backend_independent
def test_the_study_defaults_and_recommendations_load_without_keras():
    # The command line reads them before Keras (and a backend) is imported.
    code = (
        "import sys\n"
        "from keras_dualobj.study.defaults import STUDY_DEFAULTS\n"
        "from keras_dualobj.study import paper_ar_fraction, recommend_ar_fraction\n"
        "heavy = sorted({'keras', 'tensorflow', 'torch', 'jax'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
        "print(STUDY_DEFAULTS, paper_ar_fraction(32))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], env=one_thread_environment(), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "{'elbo_samples': 2} 0.5\n"


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "flags, cells, fractions",
    [
        ([], 7 * 4, None),
        (["--quick"], 3 * 2, (0.0, 0.5, 1.0)),
        (["--paper-grid"], 11 * 8, None),
        (["--quick", "--ar-fractions", "0", "63/64", "--repetitions", "2"], 2, (0.0, 63 / 64)),
    ],
)
def test_study_command_grids(flags, cells, fractions):
    from keras_dualobj.cli import build_parser
    from keras_dualobj.cli.study import study_config

    config = study_config(build_parser().parse_args(["study", "--output", "x", *flags]))
    assert len(plan_cells(config)) == cells
    if fractions is not None:
        assert config.ar_fractions == fractions


@pytest.mark.backend_independent
def test_study_command_rejects_bad_fractions(capsys):
    from keras_dualobj.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["study", "--output", "x", "--ar-fractions", "2/0"])
    assert "α must be a number or a fraction like 63/64; received '2/0'" in capsys.readouterr().err
