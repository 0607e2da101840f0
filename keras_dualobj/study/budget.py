"""The grid's token budget fitted to the corpus, as `train` fits its plan."""

import math
import sys


def fit_token_budget(config, rows, stream=None):
    """`config` with a token budget whose largest U (C / the smallest R) fits `rows`.

    A budget that fits is kept. One that does not is lowered, when the grid chose it
    (`config.fit_budget`), to the largest multiple of batch x length x lcm(R) that
    fits (every cell still runs whole epochs; every R of the grid is kept), and a
    note says so; a budget the user gave is refused with the largest that would fit.

    Example:
    >>> from keras_dualobj.data import pack_documents
    >>> from keras_dualobj.study.config import StudyConfig
    >>> rows = pack_documents([list(range(16, 116))] * 50, sequence_length=64)
    >>> config = StudyConfig((0, 1), (1, 2), token_budget=8 * 16 * 64, preset="tiny",
    ...                      fit_budget=True)
    >>> rows.num_rows * 64, fit_token_budget(config, rows, stream=False).token_budget
    (4992, 4096)
    """
    smallest = min(config.repetitions)
    usable = rows.num_rows * rows.sequence_length
    if config.token_budget // smallest <= usable:
        return config
    step = math.lcm(*config.repetitions) * config.recipe.tokens_per_step
    fitted = usable * smallest // step * step
    held = (f"the training split holds {usable:,} usable tokens ({rows.num_rows:,} whole "
            f"rows of {rows.sequence_length})")
    if config.fit_budget and fitted:
        if stream is not False:
            (sys.stdout if stream is None else stream).write(
                f"[study] note: {held}, fewer than the grid's C = {config.token_budget:,} "
                f"tokens needs at R = {smallest}; every cell trains on C = {fitted:,} "
                "instead, the largest budget that fits in whole epochs (give "
                "--token-budget to choose one; a budget you give is kept exactly).\n"
            )
        return config.with_token_budget(fitted)
    budget = (f"The grid's token budget C = {config.token_budget:,}" if config.fit_budget
              else f"--token-budget {config.token_budget:,}")
    advice = (
        f"the largest that fits is --token-budget {fitted:,}" if fitted else
        f"no multiple of {step:,} (--batch-size x --sequence-length x the lcm of "
        "--repetitions) fits: use a larger corpus, a smaller --batch-size or "
        "--sequence-length, or smaller --repetitions"
    )
    raise ValueError(
        f"{budget} needs C / R = {config.token_budget // smallest:,} unique tokens at "
        f"R = {smallest} (the smallest of --repetitions), but {held}; {advice}."
    )
