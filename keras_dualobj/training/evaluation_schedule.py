"""When a training run scores its held-out split, and on how many batches.

About `EVALUATIONS_PER_RUN` periodic evaluations per run score the first
`EVALUATION_BATCHES` held-out batches (the curve: cheap, the same rows every time);
the final evaluation scores the whole split once (the run's result: exact). Scoring
the whole split at every evaluation cost 17-29% of a `small` run's training time; these
periodic evaluations cost 3-4% (docs/performance.md, section 3). No Keras here: the
command line reads these defaults before Keras is imported.
"""

EVALUATIONS_PER_RUN = 4
EVALUATION_BATCHES = 2


def default_eval_every(total_steps, log_every):
    """Steps between periodic evaluations by default: about `EVALUATIONS_PER_RUN` per
    run, on log-segment ends.

    Example:
    >>> default_eval_every(128, 10), default_eval_every(8, 4)
    (30, 4)
    """
    return log_every * max(1, round(total_steps / (EVALUATIONS_PER_RUN * log_every)))


def validation_epochs(total_steps, segment, eval_every, final_is_periodic):
    """The Keras epochs (1-based log segments of `segment` steps) that end with a
    periodic evaluation: `fit(validation_freq=...)`.

    The last step is left out unless the periodic evaluation is the final one (it
    scores the same batches): the final evaluation scores it.

    Example:
    >>> validation_epochs(40, 10, 20, final_is_periodic=False)
    [2]
    >>> validation_epochs(40, 10, 20, final_is_periodic=True)
    [2, 4]
    """
    return [
        epoch
        for epoch in range(1, total_steps // segment + 1)
        if (epoch * segment) % eval_every == 0
        and (final_is_periodic or epoch * segment != total_steps)
    ]
