"""The repetition plan: the first U unique tokens, seen R times.

DESIGN.md §1: a run with token budget C and R repetitions sees the first
C / R unique tokens R times, reshuffled every epoch. Here U is counted in the
packed token stream (the `<s>` of each document included, as the model sees
it) and rounded *down* to whole batches of rows, so that every epoch holds
exactly the same rows and has a whole number of steps. The plan records the
requested and the used U; `describe()` states both.
"""

from dataclasses import dataclass

from keras_dualobj.data.packing import PackedRows


@dataclass(frozen=True)
class RepetitionPlan:
    """Which training rows are seen, how many times, in how many steps.

    Build with `plan_repetition`. The rows of an epoch are the first
    `rows_per_epoch` rows of the packed training split.

    Attributes:
        sequence_length: tokens per row.
        batch_size: rows per step.
        repetitions: R, epochs over the same rows.
        rows_per_epoch: rows in one epoch (a multiple of `batch_size`).
        available_rows: whole rows in the training split.
        corpus_tokens: tokens in the training split's packed stream
            (whole rows plus the packing remainder).
        requested_unique_tokens: U as asked for (before rounding).
        requested_repetitions: the R asked for when `plan_repetition` raised
            it to fit the budget into the training split, else `None`.

    Example:

    >>> from keras_dualobj.data import pack_documents
    >>> rows = pack_documents([list(range(16, 116))] * 10, sequence_length=10)
    >>> plan = plan_repetition(rows, batch_size=4, unique_tokens=500, repetitions=4)
    >>> plan.rows_per_epoch, plan.steps_per_epoch, plan.total_steps
    (48, 12, 48)
    >>> plan.unique_tokens, plan.total_tokens
    (480, 1920)
    """

    sequence_length: int
    batch_size: int
    repetitions: int
    rows_per_epoch: int
    available_rows: int
    corpus_tokens: int
    requested_unique_tokens: int
    requested_repetitions: int | None = None

    @property
    def unique_tokens(self):
        """U actually used: `rows_per_epoch * sequence_length`."""
        return self.rows_per_epoch * self.sequence_length

    @property
    def steps_per_epoch(self):
        return self.rows_per_epoch // self.batch_size

    @property
    def total_steps(self):
        return self.steps_per_epoch * self.repetitions

    @property
    def total_rows(self):
        return self.rows_per_epoch * self.repetitions

    @property
    def total_tokens(self):
        """C actually used: `unique_tokens * repetitions`."""
        return self.unique_tokens * self.repetitions

    def describe(self):
        """A sentence with U (requested and used), R, steps and C."""
        rounding = ""
        if self.unique_tokens != self.requested_unique_tokens:
            rounding = (
                f" (requested {self.requested_unique_tokens:,}, rounded down to whole "
                f"batches of {self.batch_size} x {self.sequence_length} tokens)"
            )
        raised = ""
        if self.requested_repetitions is not None:
            raised = (
                f" (R raised from {self.requested_repetitions}: the token budget at "
                f"R = {self.requested_repetitions} needs more unique tokens than the "
                "training split holds)"
            )
        return (
            f"repetition plan: U = {self.unique_tokens:,} unique tokens{rounding} "
            f"= {self.rows_per_epoch:,} rows of the {self.available_rows:,} in the "
            f"training split ({self.corpus_tokens:,} tokens), seen R = "
            f"{self.repetitions} times{raised}: {self.steps_per_epoch:,} steps/epoch, "
            f"{self.total_steps:,} steps, C = {self.total_tokens:,} tokens"
        )

    def fit_arguments(self, start_step=0):
        """Keyword arguments for `model.fit` so that Keras epochs = data epochs.

        Pass with the dataset of `make_training_dataset(..., start_step=...)`:
        `model.fit(dataset, **plan.fit_arguments(start_step))`. Keras keeps one
        iterator across epochs when `steps_per_epoch` is set, so each Keras
        epoch consumes exactly one reshuffled data epoch. Resuming through
        `fit` needs an epoch boundary; to resume mid-epoch, call
        `model.fit(dataset, epochs=1)` on the resumed dataset instead.

        Example:

        >>> from keras_dualobj.data import pack_documents
        >>> rows = pack_documents([list(range(16, 116))] * 10, sequence_length=10)
        >>> plan_repetition(rows, batch_size=4, repetitions=2).fit_arguments(25)
        {'epochs': 2, 'initial_epoch': 1, 'steps_per_epoch': 25}
        """
        _validate_start_step(self, start_step)
        epoch, within = divmod(start_step, self.steps_per_epoch)
        if within:
            raise ValueError(
                f"start_step={start_step} is not at an epoch boundary (multiples of "
                f"{self.steps_per_epoch}); `fit` epochs cannot be aligned. Resume "
                "with `model.fit(dataset, epochs=1)` instead."
            )
        return {
            "epochs": self.repetitions,
            "initial_epoch": epoch,
            "steps_per_epoch": self.steps_per_epoch,
        }


def _validate_start_step(plan, start_step):
    if isinstance(start_step, bool) or not isinstance(start_step, int):
        raise TypeError(f"`start_step` must be an int. Received: {start_step!r}")
    if not 0 <= start_step <= plan.total_steps:
        raise ValueError(
            f"`start_step` must be in [0, {plan.total_steps}] (the plan's total "
            f"steps). Received: {start_step}"
        )


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Received: {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {value}")
    return value


def plan_repetition(
    rows,
    *,
    batch_size,
    repetitions=1,
    unique_tokens=None,
    unique_fraction=None,
    token_budget=None,
    fit_repetitions=False,
):
    """Plans R epochs over the first U unique tokens of the training rows.

    Give at most one of `unique_tokens` (U), `unique_fraction` (U as a
    fraction of the training split's whole-row tokens) or `token_budget`
    (C, then U = C // R). With none, U is the whole training split. U is
    rounded down to whole batches of rows.

    Args:
        rows: the `PackedRows` of the training split.
        batch_size: rows per step, >= 1.
        repetitions: R, int >= 1.
        unique_tokens: U, int >= 1.
        unique_fraction: float in (0, 1].
        token_budget: C, int >= 1.
        fit_repetitions: with `token_budget`, raise R to the smallest value
            whose C / R fits into the training split (see
            `repetitions_to_fit`) instead of raising an error; the plan
            records the R asked for and `describe()` says so. For defaults
            that must run on any corpus; keep it off for a budget a user
            chose.

    Returns:
        A `RepetitionPlan`.

    Raises:
        ValueError: U larger than the training split (the message gives its
            size), fewer than one batch per epoch, R < 1, or conflicting
            arguments.

    Example:

    >>> from keras_dualobj.data import pack_documents
    >>> rows = pack_documents([list(range(16, 116))] * 10, sequence_length=10)
    >>> plan_repetition(rows, batch_size=4, token_budget=800, repetitions=4).unique_tokens
    200
    """
    if not isinstance(rows, PackedRows):
        raise TypeError(
            f"`rows` must be the PackedRows of the training split. Received: "
            f"{type(rows).__name__}"
        )
    _positive_int("batch_size", batch_size)
    _positive_int("repetitions", repetitions)
    given = {
        k: v
        for k, v in dict(
            unique_tokens=unique_tokens,
            unique_fraction=unique_fraction,
            token_budget=token_budget,
        ).items()
        if v is not None
    }
    if len(given) > 1:
        raise ValueError(
            "Give at most one of `unique_tokens`, `unique_fraction`, "
            f"`token_budget`. Received: {given}"
        )
    requested_repetitions = None
    length = rows.sequence_length
    usable_tokens = rows.num_rows * length
    corpus_tokens = usable_tokens + rows.num_remainder_tokens
    size_note = (
        f"the training split holds {corpus_tokens:,} tokens, of which "
        f"{rows.num_rows:,} whole rows x {length} = {usable_tokens:,} can be used"
    )
    if unique_tokens is not None:
        requested = _positive_int("unique_tokens", unique_tokens)
        asked = f"unique_tokens={requested:,}"
    elif token_budget is not None:
        _positive_int("token_budget", token_budget)
        if fit_repetitions:
            fitted = repetitions_to_fit(token_budget, repetitions, usable_tokens)
            if fitted != repetitions:
                requested_repetitions, repetitions = repetitions, fitted
        requested = token_budget // repetitions
        asked = (
            f"token_budget={token_budget:,} / repetitions={repetitions} = "
            f"{requested:,} unique tokens"
        )
    elif unique_fraction is not None:
        if isinstance(unique_fraction, bool) or not isinstance(
            unique_fraction, (int, float)
        ) or not 0 < unique_fraction <= 1:
            raise ValueError(
                f"`unique_fraction` must be in (0, 1]. Received: {unique_fraction!r}"
            )
        requested = int(unique_fraction * usable_tokens)
        asked = f"unique_fraction={unique_fraction} = {requested:,} unique tokens"
    else:
        requested = usable_tokens
        asked = "the whole training split"
    if requested > usable_tokens:
        raise ValueError(f"Asked for {asked}, but {size_note}.")
    rows_per_epoch = (requested // length) // batch_size * batch_size
    if rows_per_epoch == 0:
        raise ValueError(
            f"Asked for {asked}: fewer than one batch per epoch (batch_size="
            f"{batch_size} rows x {length} tokens = {batch_size * length:,} tokens); "
            f"{size_note}."
        )
    return RepetitionPlan(
        sequence_length=length,
        batch_size=batch_size,
        repetitions=repetitions,
        rows_per_epoch=rows_per_epoch,
        available_rows=rows.num_rows,
        corpus_tokens=corpus_tokens,
        requested_unique_tokens=requested,
        requested_repetitions=requested_repetitions,
    )


def repetitions_to_fit(token_budget, repetitions, available_tokens):
    """The smallest R >= `repetitions` with `token_budget // R <= available_tokens`.

    A budget C needs U = C // R unique tokens; when the corpus holds fewer,
    repeating the data more often keeps C (the compute) and fits the corpus.

    Example:

    >>> repetitions_to_fit(524_288, 1, 417_077)
    2
    >>> repetitions_to_fit(1_000, 1, 5_000)
    1
    """
    _positive_int("token_budget", token_budget)
    _positive_int("repetitions", repetitions)
    if available_tokens < 1:
        raise ValueError(
            f"No whole row of training tokens to fit the budget into. Received "
            f"available_tokens={available_tokens}"
        )
    # C // R <= A  <=>  C < (A + 1) * R  <=>  R >= C // (A + 1) + 1.
    return max(repetitions, token_budget // (available_tokens + 1) + 1)
