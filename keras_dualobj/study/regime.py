"""A study in the paper's regime: the paper's tokens per parameter, not only its grid.

The paper (arXiv 2512.14549) trains `paper-470m` on C = 2^35 tokens (2048 rows of 2048
tokens, 8192 steps) at every repetition level R, on U = C / R unique tokens. What a
miniature must keep are the ratios C / N (tokens per parameter, the same at every R)
and U / N = C / (R N) (unique tokens per parameter, from ~95 at R = 1 down to ~0.7 at
R = 128), not the absolute sizes.

**N is the non-embedding parameter count**, as the paper states it ("360M
non-embedding parameters") and as scaling laws count it (Kaplan et al. 2020): in a
byte-vocabulary miniature the embedding and head are most of the parameters (58% of
`nano`) but a table lookup and one small projection of the compute, so counting them
would under-train the Transformer blocks that the comparison is about. With the total
count the paper's ratio would be 73 instead of 95 tokens per parameter.

The miniature's C is capped twice: U at the smallest R must fit the training split,
and the whole grid must fit a compute budget. `regime_plan` picks the largest preset
whose regime C fits both (so on tiny Shakespeare, ~1M training bytes, the `nano`
preset) and rounds C to whole batches per epoch at every R.
"""

import math
import time

import numpy as np

from keras_dualobj.models.presets import get_preset
from keras_dualobj.models.presets import parameter_counts
from keras_dualobj.utils.validation import check_int

PAPER_PRESET = "paper-470m"
# The paper's grid of repetitions and the α it sweeps.
PAPER_REPETITIONS = (1, 2, 4, 8, 16, 32, 64, 128)
# The miniature's default grid: 5 α (both ends, the paper's 63/64 and 1/4 = 16 / 64, and
# 3/4 between) x 4 R spanning the paper's range, 2 seeds.
REGIME_AR_FRACTIONS = (0.0, 1 / 4, 3 / 4, 63 / 64, 1.0)
REGIME_REPETITIONS = (1, 4, 16, 64)
REGIME_SEEDS = (0, 1)
# Byte-vocabulary presets a regime study may choose from, smallest first.
REGIME_PRESETS = ("nano", "tiny", "small")


def non_embedding_parameters(preset):
    """N of a preset: its non-embedding parameter count (see the module docstring).

    Example:
    >>> non_embedding_parameters("nano"), non_embedding_parameters("paper-470m")
    (6352, 362742784)
    """
    return parameter_counts(get_preset(preset)["backbone"])["non_embedding"]


def paper_tokens_per_parameter():
    """The paper's C / N: 2^35 tokens over 362,742,784 non-embedding parameters.

    Example:
    >>> round(paper_tokens_per_parameter(), 2)
    94.72
    """
    return get_preset(PAPER_PRESET)["training"]["token_budget"] / non_embedding_parameters(PAPER_PRESET)


def regime_token_budget(num_parameters, tokens_per_step, repetitions, tokens_per_parameter=None):
    """C for `num_parameters` at the paper's tokens per parameter, in whole epochs.

    C is the multiple of `tokens_per_step * lcm(repetitions)` nearest to
    `tokens_per_parameter * num_parameters` (at least one such multiple), so that
    every R runs whole epochs of whole batches.

    Args:
        num_parameters: N (non-embedding), int >= 1.
        tokens_per_step: batch size x sequence length.
        repetitions: the grid's R values.
        tokens_per_parameter: C / N to match (default: the paper's).

    Example:
    >>> regime_token_budget(6352, 16 * 64, (1, 4, 16, 64))
    589824
    """
    check_int("num_parameters", num_parameters, minimum=1)
    check_int("tokens_per_step", tokens_per_step, minimum=1)
    repetitions = [check_int("repetitions", r, minimum=1) for r in repetitions]
    if not repetitions:
        raise ValueError("repetitions must name at least one R; received an empty list.")
    ratio = paper_tokens_per_parameter() if tokens_per_parameter is None else tokens_per_parameter
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"tokens_per_parameter must be a positive number; received {ratio!r}.")
    granule = tokens_per_step * math.lcm(*repetitions)
    return granule * max(1, round(ratio * num_parameters / granule))


def regime_rows(num_parameters, token_budget, repetitions):
    """Per R: the miniature's and the paper's unique tokens per parameter.

    Returns:
        list of dicts `{"repetitions", "unique_tokens", "tokens_per_parameter",
        "unique_per_parameter", "paper_unique_per_parameter"}`.

    Example:
    >>> [round(row["unique_per_parameter"], 1) for row in regime_rows(6352, 589824, (1, 64))]
    [92.9, 1.5]
    """
    paper = paper_tokens_per_parameter()
    return [
        {
            "repetitions": r,
            "unique_tokens": token_budget // r,
            "tokens_per_parameter": token_budget / num_parameters,
            "unique_per_parameter": token_budget / r / num_parameters,
            "paper_unique_per_parameter": paper / r,
        }
        for r in repetitions
    ]


def preset_regime(preset, repetitions):
    """`{"preset", "num_parameters", "token_budget", "tokens_per_step"}` of a preset at
    the paper's tokens per parameter, with its own batch size and sequence length.

    Example:
    >>> preset_regime("nano", (1, 4, 16, 64))["token_budget"]
    589824
    """
    training = get_preset(preset)["training"]
    tokens_per_step = training["batch_size"] * training["sequence_length"]
    num_parameters = non_embedding_parameters(preset)
    return {
        "preset": preset,
        "num_parameters": num_parameters,
        "token_budget": regime_token_budget(num_parameters, tokens_per_step, repetitions),
        "tokens_per_step": tokens_per_step,
    }


def regime_plan(corpus_tokens, repetitions, num_cells, budget_tokens, presets=REGIME_PRESETS):
    """The largest preset whose paper-regime grid fits the corpus and the budget.

    Args:
        corpus_tokens: training tokens available (U at the smallest R must fit).
        repetitions: the grid's R values.
        num_cells: cells in the grid (α x R x seeds).
        budget_tokens: tokens the whole grid may train (cells x C must not exceed it).
        presets: candidate presets, smallest first.

    Returns:
        dict `{"preset", "num_parameters", "token_budget", "tokens_per_step",
        "total_tokens", "rejected": {preset: reason}}`.

    Raises:
        ValueError: if not even the smallest preset fits, naming both limits.

    Example:
    >>> plan = regime_plan(997_120, (1, 4, 16, 64), 40, 10**9)
    >>> plan["preset"], plan["token_budget"], sorted(plan["rejected"])
    ('nano', 589824, ['small', 'tiny'])
    """
    check_int("corpus_tokens", corpus_tokens, minimum=1)
    check_int("num_cells", num_cells, minimum=1)
    check_int("budget_tokens", budget_tokens, minimum=1)
    chosen, rejected = None, {}
    for preset in presets:
        plan = preset_regime(preset, repetitions)
        unique = plan["token_budget"] // min(repetitions)
        if unique > corpus_tokens:
            rejected[preset] = f"U = {unique:,} at R = {min(repetitions)} > {corpus_tokens:,} corpus tokens"
        elif plan["token_budget"] * num_cells > budget_tokens:
            rejected[preset] = (
                f"{num_cells} cells x C = {plan['token_budget'] * num_cells:,} > budget "
                f"{budget_tokens:,} tokens"
            )
        else:
            chosen = {**plan, "total_tokens": plan["token_budget"] * num_cells}
    if chosen is None:
        raise ValueError(
            f"No preset of {list(presets)} fits the paper's regime here: "
            + "; ".join(f"{p}: {why}" for p, why in rejected.items())
            + ". Give a larger corpus or a larger --budget-hours."
        )
    chosen["rejected"] = {p: why for p, why in rejected.items() if p != chosen["preset"]}
    return chosen


def measure_step_seconds(spec, tokenizer, steps=30):
    """Seconds per training step of `spec`'s model here, and its first call's (compile).

    Times `fit` on random rows after a one-step warm-up; the compile time includes the
    first step. Used to predict a study's duration before it starts.

    Returns:
        dict `{"step_seconds", "compile_seconds", "tokens_per_second"}`.
    """
    check_int("steps", steps, minimum=1)
    model = spec.build_model(tokenizer=tokenizer)
    spec.compile(model, steps + 1)
    rows = np.random.default_rng(0).integers(
        5, tokenizer.vocabulary_size(), (spec.batch_size * (steps + 1), spec.sequence_length)
    ).astype("int32")
    started = time.perf_counter()
    model.fit(rows[: spec.batch_size], batch_size=spec.batch_size, verbose=0)
    compiled = time.perf_counter()
    model.fit(rows[spec.batch_size :], batch_size=spec.batch_size, verbose=0)
    step_seconds = (time.perf_counter() - compiled) / steps
    return {
        "step_seconds": step_seconds,
        "compile_seconds": compiled - started,
        "tokens_per_second": spec.tokens_per_step / step_seconds,
    }


def predict_study_seconds(num_cells, num_steps, step_seconds, cell_overhead_seconds):
    """Predicted wall time of a grid: cells x (steps x step time + per-cell overhead).

    Example:
    >>> predict_study_seconds(40, 576, 0.01, 30.0)
    1430.4
    """
    return round(num_cells * (num_steps * step_seconds + cell_overhead_seconds), 6)


def format_regime(plan, repetitions):
    """Lines describing a regime plan: N, C, C / N and U / N per R against the paper's."""
    lines = [
        f"[regime] preset {plan['preset']}: N = {plan['num_parameters']:,} non-embedding "
        f"parameters; C = {plan['token_budget']:,} tokens per cell "
        f"({plan['token_budget'] / plan['num_parameters']:.1f} tokens/parameter; the paper: "
        f"{paper_tokens_per_parameter():.1f})",
    ]
    for preset, why in plan.get("rejected", {}).items():
        lines.append(f"[regime]   {preset} does not fit: {why}")
    for row in regime_rows(plan["num_parameters"], plan["token_budget"], repetitions):
        lines.append(
            f"[regime]   R = {row['repetitions']:>3}: U = {row['unique_tokens']:>9,} tokens, "
            f"U/N = {row['unique_per_parameter']:6.2f} (paper {row['paper_unique_per_parameter']:6.2f})"
        )
    return lines
