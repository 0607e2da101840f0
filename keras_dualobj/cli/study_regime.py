"""`keras-dualobj study --regime paper`: the grid, preset and C of a regime-matched study.

Prints, before anything trains: the corpus size, each candidate preset and why it does
or does not fit, N, C, U / N per R against the paper's, the measured step time and the
predicted wall time of the whole grid.
"""

import json
from pathlib import Path



def _corpus_tokens(spec, data_dir):
    """Training-split tokens of the corpus, in whole rows of `spec.sequence_length`."""
    probe = spec.replace(repetitions=1, unique_tokens=spec.tokens_per_step, token_budget=None)
    data = probe.resolved().prepare_data(data_dir=data_dir, verbose=False)
    return data.train_rows.num_rows * spec.sequence_length, data.tokenizer


def _stored_preset(output):
    path = Path(output) / "study.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["recipe"]["preset"]


def _base_spec(settings, preset):
    from keras_dualobj.training import RunSpec

    settings = {name: value for name, value in settings.items() if name != "preset"}
    return RunSpec(preset=preset, **settings).resolved()


def regime_grid(args, settings, stream=None):
    """The grid (`ar_fractions`, `repetitions`, `token_budget`, `seeds`, `settings`) for
    the parsed `args` and the recipe `settings` given on the command line."""
    import sys

    from keras_dualobj.study import regime
    from keras_dualobj.training.callbacks import format_duration

    stream = sys.stdout if stream is None else stream
    repetitions = tuple(args.repetitions or regime.REGIME_REPETITIONS)
    fractions = tuple(args.ar_fractions or regime.REGIME_AR_FRACTIONS)
    seeds = tuple(args.seeds or regime.REGIME_SEEDS)
    num_cells = len(set(fractions)) * len(set(repetitions)) * len(set(seeds))
    if args.budget_hours is None or not args.budget_hours > 0:
        raise ValueError(f"--budget-hours must be > 0; received {args.budget_hours!r}.")
    fixed = args.preset or _stored_preset(args.output)
    candidates = [fixed] if fixed else list(regime.REGIME_PRESETS)
    budget_seconds = args.budget_hours * 3600
    rejected, chosen = {}, None
    for preset in reversed(candidates):  # the largest that fits
        spec = _base_spec(settings, preset)
        corpus, tokenizer = _corpus_tokens(spec, args.data_dir)
        plan = regime.preset_regime(preset, repetitions)
        unique = plan["token_budget"] // min(repetitions)
        if unique > corpus:
            rejected[preset] = f"U = {unique:,} at R = {min(repetitions)} > {corpus:,} corpus tokens"
            continue
        timing = regime.measure_step_seconds(spec, tokenizer)
        steps = plan["token_budget"] // spec.tokens_per_step
        overhead = 3 * timing["compile_seconds"] + (args.evaluations + 1) * args.evaluation_batches * timing["step_seconds"]
        seconds = regime.predict_study_seconds(num_cells, steps, timing["step_seconds"], overhead)
        plan.update(timing=timing, predicted_seconds=seconds, steps=steps, corpus=corpus)
        if seconds <= budget_seconds or fixed:
            chosen = plan
            break
        rejected[preset] = (
            f"predicted {format_duration(seconds)} > --budget-hours {args.budget_hours:g}"
        )
    if chosen is None:
        raise ValueError("No preset fits the paper's regime here: " + "; ".join(
            f"{p}: {why}" for p, why in rejected.items()))
    chosen["rejected"] = rejected
    lines = [f"[regime] corpus: {chosen['corpus']:,} training tokens"]
    lines += regime.format_regime(chosen, repetitions)
    timing = chosen["timing"]
    lines.append(
        f"[regime] grid: {len(set(fractions))} α x {len(set(repetitions))} R x {len(set(seeds))} "
        f"seeds = {num_cells} cells of {chosen['steps']} steps; measured here "
        f"{timing['step_seconds'] * 1000:.1f} ms/step ({timing['tokens_per_second']:,.0f} tokens/s), "
        f"compile {timing['compile_seconds']:.1f} s; predicted {format_duration(chosen['predicted_seconds'])}"
    )
    stream.write("\n".join(lines) + "\n")
    stream.flush()
    token_budget = args.token_budget or chosen["token_budget"]
    return {
        "ar_fractions": fractions,
        "repetitions": repetitions,
        "token_budget": token_budget,
        "seeds": seeds,
        "settings": {"preset": chosen["preset"]},
    }
