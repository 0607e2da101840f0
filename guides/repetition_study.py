"""
Title: The repetition study: which α for your data budget?
Author: keras-dualobj developers
Date created: 2026/11/27
Last modified: 2026/11/27
Description: Reproduce the paper's α × repetitions experiment in miniature, read its table and plots, and pick α.
Accelerator: None
"""

"""
## Introduction

When unique data runs out, a training budget of C tokens means repeating U = C / R
unique tokens R times. Samuel & Charpentier ([arXiv 2512.14549](https://arxiv.org/abs/2512.14549))
trained 50 models over the AR share α ∈ {0, 1/256, …, 255/256, 1} and R ∈ {1, 2, …, 128}
at a fixed budget and found:

- pure AR (α = 1) learns fastest but overfits beyond ~16 repetitions;
- pure masked diffusion (α = 0) resists overfitting but learns slowly;
- mixing wins at every R: α ≈ 63/64 up to R = 16, and beyond that α with α · R ≈ 16
  (the AR objective then sees about 16 effective repetitions).

`keras_dualobj.study` runs that experiment on your own corpus: one model per (α, R) cell,
the same preset, recipe, seed and number of steps everywhere, every cell evaluated on the
same held-out rows (AR loss, MD ELBO, prefix-LM loss). This guide runs a tiny study in
about a minute on CPython's built-in documentation text, shows what it writes, and then
reports what the full-size commands measured on tiny Shakespeare on a 2-core CPU.
"""

"""
## Setup
"""

import tempfile
from pathlib import Path

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

from keras_dualobj.study import (
    StudyConfig,
    paper_ar_fraction,
    plan_cells,
    read_results,
    recommend_ar_fraction,
    run_study,
    summary_table,
)

"""
## The paper's rule

`paper_ar_fraction(R)` is the paper's remark as a function: `min(63/64, 16 / R)`.
"""

for repetitions in (1, 4, 16, 32, 64, 128):
    print(f"R = {repetitions:>3}: α = {paper_ar_fraction(repetitions):.4f}")

"""
## A study is a grid at a fixed token budget

Every cell trains `token_budget / (batch_size * sequence_length)` steps. Cell (α, R)
uses the first `U = C / R` unique training tokens, reshuffled every one of its R epochs,
so the budget must split into whole batches for every R; `StudyConfig` says which
budgets work when one does not.
"""

try:
    StudyConfig(ar_fractions=(0, 1), repetitions=(1, 3), token_budget=100_000)
except ValueError as error:
    print(error)

"""
Here a tiny grid: the `tiny` preset (2 layers × 64), rows of 64 tokens, 64 steps per
cell, α ∈ {0, 1/2, 1} × R ∈ {1, 16}, on the built-in corpus (CPython's documentation
text, always there offline). `source="auto"` would pick tiny Shakespeare instead: from
its raw download when `KERAS_DUALOBJ_TFDS_LOCAL_COPY` points at one (TFDS builds it
offline), or by downloading it when the TFDS host answers, and the built-in text
otherwise. At this size the numbers below say nothing about α; the procedure is the
point.
"""

config = StudyConfig(
    ar_fractions=(0, 1 / 2, 1),
    repetitions=(1, 16),
    token_budget=64 * 16 * 64,
    preset="tiny",
    source="builtin",
    sequence_length=64,
    batch_size=16,
    evaluations=4,
    evaluation_batches=4,
    elbo_samples=1,
)
for cell in plan_cells(config):
    print(cell)

"""
`run_study` trains the cells one after another with an overall progress line and ETA,
prints one line per finished cell and ends with the summary table. Each cell is a
resumable `keras_dualobj.training.train` run: kill the study and run it again, and it
skips the finished cells and resumes the unfinished one from its last checkpoint.
"""

study_dir = Path(tempfile.mkdtemp()) / "tiny_study"
results = run_study(config, study_dir)

"""
## What a study writes

`results.csv` and `results.json` hold one row per cell: α, R, U, C, steps, seed, the final
and best held-out AR loss (and the epoch of the best), the final and best MD ELBO, the
prefix-LM loss and the wall time; `results.json` adds each cell's held-out curve. The
plots are PNG files: AR loss and MD ELBO against α for each R, a heat map over (α, R),
and the held-out curves of α = 0, α = 1 and the best α at the highest R.
"""

print(sorted(path.name for path in study_dir.iterdir()))
print((study_dir / "results.csv").read_text().splitlines()[0])
for result in read_results(study_dir):
    print(
        f"α = {result.ar_fraction:.2f}, R = {result.repetitions:>2}: "
        f"AR {result.final_ar_loss:.3f} (best {result.best_ar_loss:.3f} at epoch "
        f"{result.best_ar_loss_epoch:g}), MD ELBO {result.final_md_elbo:.3f}"
    )

"""
The table printed at the end of the run compares, for each R, the best α by held-out AR
loss, by MD PLL (the MD face's verdict, as the paper judges it) and by MD ELBO (beside
it) with both ends of the same run (negative = better than that end), next to the
paper's α. It is saved as `summary.txt`; `summary_table` builds it from any list of
results, e.g. only the R = 16 cells:
"""

print(summary_table([result for result in results if result.repetitions == 16]))

"""
`recommend_ar_fraction` gives the paper's α, and the measured one per face when it is
given a study directory (the `keras-dualobj recommend --repetitions R --study DIR`
command): `md_face` names the metric that judges the MD face, the PLL (`measured_md_pll`,
`gp_md_pll`), with the ELBO's keys beside it.
"""

print(recommend_ar_fraction(16, study_dir))

"""
## The paper's analysis: a GP fit over (α, R)

The paper does not just read the best grid cell: it fits a Gaussian process to each
held-out metric over (α, R) and reads the best α per R, with its uncertainty, off the
fit. `analyse_study` does the same (`keras_dualobj.study.gp_analysis`: inputs logit α
and log2 R, a squared-exponential kernel, seeds as noise, hyperparameters of highest
evidence on a fixed grid): for each face — the AR loss without α = 0, the MD ELBO
without α = 1, the models that train it — the best α per R, a 90% interval and the
probability that each grid α is the best. It writes `analysis.txt`, `gp_analysis.json`
and one figure with both faces, `gp_best_alpha.png`, and judges the paper's three
findings against the seed spread (with one seed, as here, nothing is beyond it). The
command is `keras-dualobj study --output DIR --analyse-only`.
"""

from keras_dualobj.study import analyse_study

text = analyse_study(study_dir)
print(text[text.index("GP fit"):])

"""
## The study in the paper's regime

A miniature must keep the paper's *ratios*, not only its grid. The paper trains 363M
non-embedding parameters on C = 2^35 tokens at every R: ~95 tokens per parameter, and
U / N = 95 / R unique tokens per parameter, from 95 at R = 1 down to 0.7 at R = 128. The
`small` preset at C = 2^19 sees 0.66 tokens per parameter: 140x under-trained at R = 1,
where masked diffusion, the slow learner, is starved. `keras-dualobj study --regime
paper` chooses the preset and C so that the ratios match (N: non-embedding parameters,
as the paper counts them; see `keras_dualobj.study.regime`). On tiny Shakespeare (~1M
training bytes) U at R = 1 must fit the corpus, which leaves the `nano` preset
(2 x 16, 6,352 non-embedding parameters):
"""

from keras_dualobj.study import preset_regime, regime_rows

plan = preset_regime("nano", (1, 4, 16, 64))
print(plan)
for row in regime_rows(plan["num_parameters"], plan["token_budget"], (1, 4, 16, 64)):
    print(
        f"R = {row['repetitions']:>2}: U = {row['unique_tokens']:>7,} tokens, "
        f"U/N = {row['unique_per_parameter']:5.2f} (the paper: {row['paper_unique_per_parameter']:5.2f})"
    )

"""
## What the full-size commands measured

Two commands ran the study on tiny Shakespeare with the `small` preset (0.86M
parameters, byte tokens, rows of 128, batch 32) and the paper's recipe (Muon + AdamW,
peak learning rate 1e-2, warmup-stable-decay), C = 2^19 tokens = 128 steps per cell,
evaluated on 256 held-out rows (MD ELBO: 2 masks per row, stratified t):

```bash
export KERAS_DUALOBJ_TFDS_LOCAL_COPY=path/to/tinyshakespeare/input.txt   # optional
keras-dualobj study --quick --output studies/quick   # α ∈ {0, 1/2, 1} × R ∈ {1, 16}
keras-dualobj study --output studies/default         # 7 α × R ∈ {1, 4, 16, 64}
```

The default study took 44 minutes (TensorFlow backend, 57–162 s per cell, part of the
time beside the test suite); the quick one 8 min 46 s alone. The default printed (recorded
before the study measured the PLL: today's table has a `best α (MD PLL)` column between
these two):

```text
Held-out losses (nats/token); 'vs' columns: best minus that end (negative = better).
256 held-out rows of 128 tokens; AR and prefix-LM losses exact; MD ELBO a Monte-Carlo bound on the NLL (stratified t, masks per row: 2).

  R |   best α (AR loss)  vs α=0  vs α=1 |   best α (MD ELBO)  vs α=0  vs α=1 | paper α
  1 |     63/64 =   1.958  -0.848  -0.020 |       1/4 =   2.562  -0.023  -1.253 |   63/64
  4 |     63/64 =   2.151  -0.952  -0.022 |         0 =   2.699  +0.000  -1.578 |   63/64
 16 |       1/2 =   2.378  -0.639  -1.867 |         0 =   2.670  +0.000  -3.161 |   63/64
 64 |       1/4 =   3.000  -0.170  -4.317 |         0 =   2.908  +0.000  -4.540 |     1/4
```

The held-out AR loss of every cell (`heatmap_ar_loss.png`; red: best α per R):

| R | α = 0 | 1/4 | 1/2 | 3/4 | 15/16 | 63/64 | 1 |
|---|---|---|---|---|---|---|---|
| 1 | 2.81 | 2.29 | 2.18 | 2.05 | 1.98 | **1.96** | 1.98 |
| 4 | 3.10 | 2.45 | 2.35 | 2.19 | 2.15 | **2.15** | 2.17 |
| 16 | 3.02 | 2.46 | **2.38** | 2.70 | 3.72 | 4.05 | 4.24 |
| 64 | 3.17 | **3.00** | 4.45 | 5.45 | 6.53 | 6.94 | 7.32 |

Read it as the paper does:

- **Pure AR overfits.** At R = 16 and R = 64 the α = 1 model's held-out AR loss is lowest
  after 8 epochs (2.454 and 2.832) and then climbs to 4.245 and 7.317 by the end of the
  budget (`training_curves.png`). The more AR rows, the earlier and steeper the climb.
- **Mixing beats both ends on AR loss at every R**, and the best α moves the way the
  paper says: 63/64 for R = 1 and 4, then down with R — 1/2 at R = 16 and 1/4 at R = 64,
  where α · R = 16 exactly as the paper's rule gives. At R = 16 the rule still says
  63/64; a 0.86M-parameter model on 32k unique tokens overfits sooner than the paper's
  470M-parameter models on billions.
- **Pure MD is best on the MD ELBO from R = 4 on** (α = 1/4 wins at R = 1 by 0.023).
  On the diffusion side mixing does not beat both ends at this scale; the paper's claim
  is about downstream accuracy of much larger models, which a CPU cannot reproduce.
- One seed per cell: gaps of ~0.02 nats (R ≤ 4) are within seed noise; the R ≥ 16
  gaps are not.

To pick α for your own budget, run the grid on your corpus at a budget you can afford
and read `recommend`; without a study, the paper's rule is the prior.

## What the regime-matched study measured

```bash
keras-dualobj study --regime paper --budget-hours 1.2 --seeds 0 1 2 \
    --source text --path tinyshakespeare/input.txt \
    --evaluations 8 --evaluation-batches 16 --output studies/regime
keras-dualobj study --output studies/regime --analyse-only --multiple-choice
```

The `nano` preset (6,352 non-embedding parameters) at C = 589,824 tokens (92.9 tokens
per parameter; U / N from 92.9 at R = 1 to 1.45 at R = 64, the paper's 94.7 to 1.48),
5 α × 4 R, 3 seeds (0, 1, 2), on JAX on a shared 2-core CPU (66 min for the 60 cells, with the multiple-choice scoring and tests running beside it). Mean ± sample std over
seeds; bold = best per R:

*held-out AR loss*

| R | α = 0 | α = 1/4 | α = 3/4 | α = 63/64 | α = 1 |
|---|---|---|---|---|---|
| 1 | 2.840 ± 0.087 | 2.397 ± 0.015 | 2.213 ± 0.008 | **2.139 ± 0.006** | 2.155 ± 0.005 |
| 4 | 2.921 ± 0.183 | 2.545 ± 0.015 | 2.423 ± 0.005 | **2.355 ± 0.035** | 2.419 ± 0.011 |
| 16 | 2.923 ± 0.152 | 2.554 ± 0.020 | 2.452 ± 0.009 | **2.450 ± 0.046** | 2.462 ± 0.031 |
| 64 | 2.859 ± 0.064 | **2.716 ± 0.030** | 2.931 ± 0.022 | 3.673 ± 0.086 | 3.882 ± 0.059 |

*held-out MD ELBO*

| R | α = 0 | α = 1/4 | α = 3/4 | α = 63/64 | α = 1 |
|---|---|---|---|---|---|
| 1 | **2.630 ± 0.032** | 2.707 ± 0.005 | 2.729 ± 0.005 | 3.038 ± 0.038 | 4.787 ± 0.742 |
| 4 | **2.748 ± 0.053** | 2.814 ± 0.015 | 2.837 ± 0.006 | 3.139 ± 0.039 | 4.590 ± 0.347 |
| 16 | **2.751 ± 0.055** | 2.814 ± 0.009 | 2.870 ± 0.006 | 3.254 ± 0.062 | 5.337 ± 0.783 |
| 64 | **2.964 ± 0.016** | 2.991 ± 0.016 | 3.099 ± 0.023 | 3.944 ± 0.076 | 6.100 ± 0.411 |

*multiple-choice accuracy, ar mode*

| R | α = 0 | α = 1/4 | α = 3/4 | α = 63/64 | α = 1 |
|---|---|---|---|---|---|
| 1 | 0.344 ± 0.024 | 0.419 ± 0.009 | 0.473 ± 0.007 | **0.499 ± 0.006** | 0.496 ± 0.014 |
| 4 | 0.354 ± 0.034 | 0.398 ± 0.016 | 0.443 ± 0.015 | 0.469 ± 0.017 | **0.479 ± 0.013** |
| 16 | 0.352 ± 0.023 | 0.385 ± 0.010 | 0.431 ± 0.010 | 0.443 ± 0.017 | **0.471 ± 0.011** |
| 64 | 0.367 ± 0.014 | 0.388 ± 0.003 | **0.406 ± 0.007** | 0.388 ± 0.006 | 0.396 ± 0.020 |

*multiple-choice accuracy, md mode*

| R | α = 0 | α = 1/4 | α = 3/4 | α = 63/64 | α = 1 |
|---|---|---|---|---|---|
| 1 | 0.351 ± 0.005 | 0.387 ± 0.016 | **0.424 ± 0.020** | 0.397 ± 0.037 | 0.346 ± 0.007 |
| 4 | 0.339 ± 0.010 | 0.378 ± 0.014 | **0.425 ± 0.027** | 0.381 ± 0.026 | 0.355 ± 0.011 |
| 16 | 0.346 ± 0.009 | 0.370 ± 0.003 | **0.411 ± 0.001** | 0.379 ± 0.022 | 0.337 ± 0.006 |
| 64 | 0.352 ± 0.014 | 0.383 ± 0.012 | **0.396 ± 0.006** | 0.348 ± 0.016 | 0.312 ± 0.012 |

![GP analysis, both faces](img/regime_gp_best_alpha.png)

The verdicts `analysis.txt` gives (`*`: beyond the seed spread):

```text
(1) mixing beats both ends, on the held-out AR loss: PARTLY (at R = 1, 4, 64)
    R =   1: best mixed α 63/64 2.139±0.006; vs α=0 -0.701±0.093*, vs α=1 -0.016±0.012*
    R =   4: best mixed α 63/64 2.355±0.035; vs α=0 -0.566±0.218*, vs α=1 -0.063±0.046*
    R =  16: best mixed α 63/64 2.450±0.046; vs α=0 -0.473±0.198*, vs α=1 -0.012±0.078
    R =  64: best mixed α 1/4 2.716±0.030; vs α=0 -0.142±0.094*, vs α=1 -1.165±0.089*
(1) mixing beats both ends, on the held-out MD ELBO: NOT REPRODUCED
    R =   1: best mixed α 1/4 2.707±0.005; vs α=0 +0.077±0.037*, vs α=1 -2.080±0.747*
    R =   4: best mixed α 1/4 2.814±0.015; vs α=0 +0.066±0.068, vs α=1 -1.777±0.362*
    R =  16: best mixed α 1/4 2.814±0.009; vs α=0 +0.063±0.064, vs α=1 -2.523±0.792*
    R =  64: best mixed α 1/4 2.991±0.016; vs α=0 +0.027±0.031, vs α=1 -3.109±0.427*
(1) mixing beats both ends, on the ar-mode multiple-choice error: NOT REPRODUCED
    R =   1: best mixed α 63/64 0.501±0.006; vs α=0 -0.154±0.030*, vs α=1 -0.003±0.020
    R =   4: best mixed α 63/64 0.531±0.017; vs α=0 -0.116±0.051*, vs α=1 +0.009±0.030
    R =  16: best mixed α 63/64 0.557±0.017; vs α=0 -0.092±0.040*, vs α=1 +0.028±0.028
    R =  64: best mixed α 3/4 0.594±0.007; vs α=0 -0.040±0.021*, vs α=1 -0.010±0.027
(1) mixing beats both ends, on the md-mode multiple-choice error: REPRODUCED
    R =   1: best mixed α 3/4 0.576±0.020; vs α=0 -0.073±0.025*, vs α=1 -0.078±0.027*
    R =   4: best mixed α 3/4 0.575±0.027; vs α=0 -0.086±0.036*, vs α=1 -0.070±0.037*
    R =  16: best mixed α 3/4 0.589±0.001; vs α=0 -0.065±0.010*, vs α=1 -0.074±0.007*
    R =  64: best mixed α 3/4 0.604±0.006; vs α=0 -0.044±0.019*, vs α=1 -0.084±0.018*
(2) dual resists overfitting (pure AR on the AR loss, R = 64): REPRODUCED: final - best = 1.035±0.059 at α = 1 vs 0.000±0.000 at α = 1/4
(2) dual resists overfitting (pure MD on the MD ELBO, R = 64): NOT REPRODUCED: final - best = 0.000±0.000 at α = 0 vs 0.000±0.000 at α = 1/4
(3) same best α on both faces (AR loss vs MD ELBO, GP 90% intervals overlap): PARTLY (at R = 64)
    R =    1: 0.983 [0.954, 1.000] vs 0.001 [0.000, 0.498]
    R =    4: 0.971 [0.948, 0.986] vs 0.000 [0.000, 0.498]
    R =   16: 0.922 [0.815, 1.000] vs 0.000 [0.000, 0.486]
    R =   64: 0.256 [0.250, 0.333] vs 0.439 [0.000, 0.486]
(3) same best α on both faces (ar choice error vs md choice error, GP 90% intervals overlap): PARTLY (at R = 64)
    R =    1: 0.987 [0.953, 1.000] vs 0.814 [0.670, 0.901]
    R =    4: 1.000 [0.991, 1.000] vs 0.791 [0.660, 0.887]
    R =   16: 1.000 [1.000, 1.000] vs 0.766 [0.627, 0.871]
    R =   64: 0.765 [0.609, 1.000] vs 0.730 [0.558, 0.866]
    multiple choice, mean accuracy over all cells (ar, prefix, md): 0.420, 0.417, 0.371
```

Read as the paper's three findings:

- **(1) Mixing beats either end: reproduced on the AR face, not on the MD ELBO.** On the
  held-out AR loss the best α is a mixture at every R and follows the paper's rule
  exactly (63/64 at R = 1, 4, 16; 1/4 = 16 / 64 at R = 64), beyond the seed spread at
  R = 1, 4 and 64; at R = 16, 63/64 beats pure AR by 0.012, inside the spread (± 0.078).
  On the MD ELBO pure MD has the lowest mean at every R (0.03–0.08 nats below α = 1/4),
  beyond the spread only at R = 1: matching the paper's ratios did **not** make mixing
  win the MD face (as with the `small` preset). On the miniature downstream task it is
  the other way round: in MD mode α = 3/4 beats both ends at every R, beyond the spread
  (accuracy 0.40–0.43 vs 0.34–0.35 for pure MD and 0.31–0.36 for pure AR); in AR mode
  pure AR and 63/64 tie.
- **(2) Dual models resist overfitting: reproduced.** At R = 64 pure AR's held-out AR
  loss ends 1.04 ± 0.06 nats above its best (reached after 8–16 of its 64 epochs), and
  α = 63/64 climbs almost as much, while α = 1/4 never rises (final = best) and has the
  lowest loss of the grid. Pure MD does not overfit its own face at all here
  (final = best), so the MD-side version of the claim has nothing to show.
- **(3) The same best α on both faces: not reproduced.** The GP puts the AR-loss optimum
  at 0.92–0.98 for R ≤ 16 and 1/4 at R = 64, the MD-ELBO optimum at α = 0 (P ≥ 0.87
  that the grid's best is α = 0 at every R); the 90% intervals overlap only at R = 64.
  On multiple choice the faces are closer but still apart: AR mode ≈ 1, MD mode ≈ 3/4
  at every R (intervals disjoint at R ≤ 16, overlapping at R = 64).
"""
