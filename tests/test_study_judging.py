"""What a study's analysis refuses to judge: the GP at an R with too few α on a face, the
findings without the seeds or cells they compare; and what `summary.txt` and `recommend`
judge the MD face by, the PLL or, where it was not measured, the ELBO (NumPy and text
only, no training)."""

import dataclasses
import re

import pytest

from keras_dualobj.cli import main
from keras_dualobj.study import StudyConfig
from keras_dualobj.study.analysis import analyse_study
from keras_dualobj.study.analysis import study_analyses
from keras_dualobj.study.claims import claim_study_dir
from keras_dualobj.study.findings import findings_text
from keras_dualobj.study.gp_analysis import alpha_coverage
from keras_dualobj.study.recommend import recommend_ar_fraction
from keras_dualobj.study.results import CellResult
from keras_dualobj.study.results import write_results
from keras_dualobj.study.summary import summary_table

# NumPy, files and text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def _cells(alphas, repetitions=(1, 16), seeds=(0,), pll=True):
    """A smooth surface: AR loss lowest at α = 0.6, MD ELBO at α = 0.3, MD PLL (unless
    `pll=False`, as results written before it) at α = 0.4; seeds add 0.01."""
    cells = []
    for seed in seeds:
        for r in repetitions:
            for a in alphas:
                ar, md = 2 + (a - 0.6) ** 2 + 0.01 * seed, 2.5 + (a - 0.3) ** 2 + 0.01 * seed
                cells.append(CellResult(a, r, 100, 400, 10, seed, ar, ar, 1.0, md, md, ar, 1.0,
                                        curve=[{"step": 1, "epoch": 1.0, "ar_loss": ar, "md_elbo": md}],
                                        final_md_pll=1.8 + (a - 0.4) ** 2 + 0.01 * seed if pll else None))
    return cells


def _verdicts(text):
    """`{finding line's subject: verdict}` of `findings_text`."""
    return dict(line.split(": ", 1) for line in text.splitlines() if re.match(r"\(\d\)", line))


def test_one_seed_and_two_alphas_per_face_are_not_judged(tmp_path):
    # α ∈ {0, 1/2, 1} (the --quick grid): the AR face has α = 1/2 and 1, the MD face 0 and 1/2.
    write_results(_cells((0.0, 0.5, 1.0)), tmp_path)
    text = analyse_study(tmp_path, num_draws=200)
    gp = text[text.index("GP fit"):text.index("(1)")]
    assert "AR loss: not judged (4 observations, 2 distinct α (1/2, 1); the GP needs >= 3 at an R)" in gp
    assert "MD ELBO: not judged (4 observations, 2 distinct α (0, 1/2); the GP needs >= 3 at an R)" in gp
    assert "MD PLL: not judged (4 observations, 2 distinct α (0, 1/2); the GP needs >= 3 at an R)" in gp
    assert "`keras-dualobj study --ar-fractions 0 1/4 1/2 3/4 1`" in gp
    assert "[0.500, 0.500]" not in text and "with P = " not in gp  # no degenerate interval
    verdicts = _verdicts(text)
    assert len(verdicts) == 7 and all(v.startswith("NOT JUDGED (") for v in verdicts.values()), verdicts
    assert verdicts["(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap)"] == (
        "NOT JUDGED (at every R a face has fewer than 3 α, so the GP's best α can only be a "
        "measured one: --ar-fractions 0 1/4 1/2 3/4 1)")
    assert "    R =    1: not judged (2 α at R = 1 (1/2, 1); needs >= 3) vs not judged " \
        "(2 α at R = 1 (0, 1/2); needs >= 3)" in text.splitlines()
    assert text.splitlines()[-1].startswith("    NOT JUDGED: the flags named train what is missing")
    assert (tmp_path / "gp_best_alpha.png").read_bytes().startswith(b"\x89PNG")
    recommendation = recommend_ar_fraction(4, tmp_path)  # between R = 1 and 16: interpolated
    assert "gp_ar_loss" not in recommendation and "gp_md_elbo" not in recommendation
    assert recommendation["gp_ar_loss_not_judged"] == (
        "interpolated from 2 α at R = 1 (1/2, 1) and 2 α at R = 16 (1/2, 1); needs >= 3")
    # Two seeds judge finding (1) on the cells themselves; the GP's (3) still needs α.
    two_seeds = _verdicts(findings_text(_cells((0.0, 0.5, 1.0), seeds=(0, 1)),
                                        study_analyses(_cells((0.0, 0.5, 1.0), seeds=(0, 1)), num_draws=200)))
    assert two_seeds["(1) mixing beats both ends, on the held-out AR loss"] == "REPRODUCED"
    assert two_seeds["(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap)"].startswith(
        "NOT JUDGED (at every R a face has fewer than 3 α")


def test_the_gp_judges_only_the_repetitions_with_three_alphas(tmp_path):
    # Five α at R = 1; at R = 16 only 1/2 and 1 finished: the AR face has 2 α there.
    cells = [c for c in _cells((0.0, 0.25, 0.5, 0.75, 1.0), seeds=(0, 1))
             if c.repetitions == 1 or c.ar_fraction in (0.5, 1.0)]
    analyses = study_analyses(cells, num_draws=500)
    ar = analyses["AR loss"]["per_repetition"]
    assert ar[16] == {"not_judged": "2 α at R = 16 (1/2, 1); needs >= 3"}
    low, high = ar[1]["interval"]
    assert low <= 0.6 <= high and sum(ar[1]["probabilities"]) == pytest.approx(1.0)
    verdict = _verdicts(findings_text(cells, analyses))[
        "(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap)"]
    assert verdict.endswith("(judged at R = 1 only)") and not verdict.startswith("NOT JUDGED"), verdict
    assert alpha_coverage([c.ar_fraction for c in cells if c.ar_fraction > 0],
                          [c.repetitions for c in cells if c.ar_fraction > 0], [1, 4, 16])[4] == (
        "interpolated from 2 α at R = 16 (1/2, 1); needs >= 3")
    # With 3 α on each face at every R the GP interpolates between them, as before.
    write_results(_cells((0.25, 0.5, 0.75, 1.0), repetitions=(1, 4), seeds=(0, 1)), tmp_path)
    between = recommend_ar_fraction(2, tmp_path)
    assert "measured_ar_loss" not in between and "gp_ar_loss_not_judged" not in between
    low, high = between["gp_ar_loss"]["interval"]
    assert low <= between["gp_ar_loss"]["best_alpha"] <= high and low <= 0.6 <= high
    low, high = between["gp_md_elbo"]["interval"]  # MD face: 1/4, 1/2, 3/4
    assert low <= between["gp_md_elbo"]["best_alpha"] <= high


def test_recommend_prints_the_gp_alpha_or_why_a_face_is_not_judged(tmp_path, capsys):
    # α ∈ {1/4, 1/2, 1}: three α train AR (judged), two train MD (α = 1 trains no MD).
    write_results(_cells((0.25, 0.5, 1.0)), tmp_path)
    assert main(["recommend", "--repetitions", "4", "--study", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("R = 4: the paper's rule"), lines
    assert re.fullmatch(rf"  {re.escape(str(tmp_path))}: GP best α by held-out AR loss = "
                        r"\d\.\d{3} \(90% interval \d\.\d{3} to \d\.\d{3}\)", lines[1]), lines[1]
    # The MD face: the PLL first, the ELBO beside it.
    assert lines[2:] == [
        f"  {tmp_path}: GP best α by held-out MD {face}: not judged (interpolated from 2 α at "
        "R = 1 (1/4, 1/2) and 2 α at R = 16 (1/4, 1/2); needs >= 3)" for face in ("PLL", "ELBO")]


def test_findings_without_the_cells_they_compare_are_not_judged():
    # Two seeds of the two ends only: no mixed α to compare with them (once "REPRODUCED").
    lines = findings_text(_cells((0.0, 1.0), seeds=(0, 1)), {}).splitlines()[1:]
    assert lines[:3] == [
        f"(1) mixing beats both ends, on the held-out {face}: NOT JUDGED (no R has a mixed α "
        "(0 < α < 1) beside both ends α = 0 and α = 1: --ar-fractions 0 1/2 1)"
        for face in ("AR loss", "MD PLL", "MD ELBO")
    ]
    lines = lines[1:]
    assert lines[2] == ("(2) dual resists overfitting (pure AR on the AR loss, R = 16): NOT JUDGED "
                        "(needs α = 1 and a mixed α (0 < α < 1) at the largest R: --ar-fractions 1/2 1)")


def test_the_paper_metrics_come_first_and_a_study_without_the_pll_says_so(tmp_path):
    cells = _cells((0.0, 0.25, 0.5, 0.75, 1.0), seeds=(0, 1))
    analyses = study_analyses(cells, num_draws=300)
    assert list(analyses) == ["AR loss", "MD PLL", "MD ELBO"]
    low, high = analyses["MD PLL"]["per_repetition"][1]["interval"]
    assert low <= 0.4 <= high  # the PLL surface's minimum, not the ELBO's (0.3)
    lines = findings_text(cells, analyses).splitlines()
    subjects = [line.split(":")[0] for line in lines if re.match(r"\(\d\)", line)]
    assert subjects[:3] == [f"(1) mixing beats both ends, on the held-out {face}"
                            for face in ("AR loss", "MD PLL", "MD ELBO")]
    assert subjects[-2:] == ["(3) same best α on both faces (AR loss vs MD PLL, GP 90% intervals overlap)",
                             "(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap)"]
    # Results written before the PLL: left out of the fits, "NOT MEASURED" in the findings.
    write_results(_cells((0.0, 0.25, 0.5, 0.75, 1.0), seeds=(0, 1), pll=False), tmp_path)
    text = analyse_study(tmp_path, num_draws=200)
    verdicts = _verdicts(text)
    missing = ("NOT MEASURED (results written before it; `keras-dualobj study --output DIR "
               "--analyse-only` scores it from each cell's model.keras)")
    assert verdicts["(1) mixing beats both ends, on the held-out MD PLL"] == missing
    assert verdicts["(3) same best α on both faces (AR loss vs MD PLL)"] == missing
    assert verdicts["(1) mixing beats both ends, on the held-out MD ELBO"] != missing
    assert "MD PLL" not in text[:text.index("(1)")]  # no seed-table column, no GP fit


def test_summary_and_recommend_judge_the_md_face_by_the_pll_with_the_elbo_beside_it(tmp_path, capsys):
    # On the grid the PLL's best α is 1/2 (its surface's minimum is at 0.4), the ELBO's 1/4
    # (minimum at 0.3): the MD face's verdict is the PLL's, the ELBO's is printed beside it.
    cells = _cells((0.0, 0.25, 0.5, 0.75, 1.0))
    rows = summary_table(cells).splitlines()
    header = next(line for line in rows if line.startswith("  R |"))
    assert [part.strip() for part in header.split("|")][1:4] == [
        f"best α ({face})  vs α=0  vs α=1" for face in ("AR loss", "MD PLL", "MD ELBO")]
    for row in rows[rows.index(header) + 1:]:
        ar, pll, elbo = (part.split("=")[0].strip() for part in row.split("|")[1:4])
        assert (ar, pll, elbo) == ("1/2", "1/2", "1/4"), row
    assert not any("judged by the MD ELBO" in line for line in rows)
    write_results(cells, tmp_path)
    recommendation = recommend_ar_fraction(16, tmp_path)
    assert recommendation["md_face"] == "md_pll" and "md_pll_not_measured" not in recommendation
    assert (recommendation["measured_md_pll"], recommendation["measured_md_elbo"]) == (0.5, 0.25)
    assert recommendation["measured_md_pll_value"] == pytest.approx(1.81)
    low, high = recommendation["gp_md_pll"]["interval"]  # fitted on α = 0, 1/4, 1/2, 3/4
    assert low <= 0.4 <= high
    low, high = recommendation["gp_md_elbo"]["interval"]
    assert low <= 0.3 <= high
    assert main(["recommend", "--repetitions", "16", "--study", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    faces = [re.search(r"by held-out (AR loss|MD PLL|MD ELBO)", line).group(1) for line in lines[1:]]
    assert faces == ["AR loss", "AR loss", "MD PLL", "MD PLL", "MD ELBO", "MD ELBO"], lines
    assert lines[3] == f"  {tmp_path}: best grid α by held-out MD PLL = 1/2 (1.810 nats/token, mean over seeds)"
    assert lines[5] == f"  {tmp_path}: best grid α by held-out MD ELBO = 1/4 (2.502 nats/token, mean over seeds)"


def test_a_study_without_the_pll_nor_models_says_the_md_face_is_judged_by_the_elbo(tmp_path, capsys):
    # Results written before the PLL, no model.keras to score it from (as if deleted).
    cells = _cells((0.0, 0.25, 0.5, 0.75, 1.0), pll=False)
    claim_study_dir(tmp_path, StudyConfig((0.0, 0.25, 0.5, 0.75, 1.0), (1, 16), 16 * 16 * 64,
                                          preset="tiny"), overwrite=False)
    write_results(cells, tmp_path)
    recommendation = recommend_ar_fraction(16, tmp_path)
    assert recommendation["md_face"] == "md_elbo"
    # The cells its verdicts read: all five at R = 16, and the MD face's (α < 1) at R = 1.
    assert recommendation["md_pll_not_measured"] == (
        "MD PLL not measured in 9 of 9 cells (results written before it, and no model.keras "
        "to score it from)")
    assert not any("md_pll" in key for key in recommendation if key != "md_pll_not_measured")
    assert recommendation["measured_md_elbo"] == 0.25 and "gp_md_elbo" in recommendation
    assert main(["recommend", "--repetitions", "16", "--study", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[3] == (
        f"  {tmp_path}: MD PLL not measured in 9 of 9 cells (results written before it, and no "
        "model.keras to score it from): the MD face is judged by the held-out MD ELBO here")
    assert "[held-out PLL] alpha0.5_R16: not measured: no model.keras in the cell folder" in captured.err
    # summary.txt: the PLL column is n/a where a cell has none, and the table says why.
    one_missing = [dataclasses.replace(c, final_md_pll=None) if (c.ar_fraction, c.repetitions) == (1.0, 16)
                   else dataclasses.replace(c, final_md_pll=1.8 + (c.ar_fraction - 0.4) ** 2) for c in cells]
    rows = summary_table(one_missing).splitlines()
    assert rows[-3].split("|")[2].strip().startswith("1/2 =")  # R = 1: judged by the PLL
    assert rows[-2].split("|")[2].strip() == "n/a"  # R = 16: not, though 4 of 5 cells have it
    assert rows[-2].split("|")[3].strip().startswith("1/4 =")
    assert rows[-1] == ("MD PLL n/a at R = 16: MD PLL not measured in 1 of 5 cells (results written "
                        "before it, and no model.keras to score it from); the MD face is judged by "
                        "the MD ELBO there.")
