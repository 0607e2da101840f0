"""What a repetition study trains and how it evaluates: `StudyConfig`, a study's identity
(stored as `study.json`, `keras_dualobj.study.claims`)."""

import dataclasses
import math

from keras_dualobj.study.claims import GRID_SETTINGS
from keras_dualobj.study.defaults import STUDY_DEFAULTS
from keras_dualobj.training import RunSpec
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int


@dataclasses.dataclass(frozen=True, init=False)
class StudyConfig:
    """What a repetition study trains and how it evaluates.

    Every cell trains `recipe` (a `keras_dualobj.training.RunSpec`: the model, the
    corpus and the optimiser recipe, with the same defaults as `keras-dualobj
    train`) with the cell's α and R. Recipe settings may be given directly as keyword
    arguments (`preset="tiny"`, `dropout=0.1`, ...) or as `recipe=RunSpec(...)`.

    Args:
        ar_fractions: α values (AR share of rows), each in [0, 1].
        repetitions: R values, each an integer >= 1.
        token_budget: C, tokens each cell trains on; `C / (batch_size *
            sequence_length)` steps must be a multiple of every R so that
            `U = C / R` is a whole number of batches.
        seeds: optional seeds; every (α, R) cell is trained once per seed (model
            initialisation, masks and data order; the held-out split stays the
            recipe's). `None`: the recipe's seed only, cells named without a seed.
        evaluations: held-out evaluations per cell (the training curves).
        evaluation_batches: held-out batches per evaluation (`None`: all).
        data_dir: TFDS data directory.
        recipe: optional `RunSpec`; defaults to `RunSpec()` with `elbo_samples=2`
            (`keras_dualobj.study.defaults.STUDY_DEFAULTS`).
        fit_budget: `token_budget` is a default the user did not choose (the
            `study` command's grids): `run_study` lowers it to the largest budget
            the corpus holds at the smallest R, with a note, instead of refusing
            (see `fit_token_budget`). Not part of the study's identity.
        **settings: `RunSpec` fields overriding the recipe's, except the grid's own
            (`ar_fraction`, `repetitions`, `unique_tokens`, `token_budget`).

    The recipe's settings are read from the resolved recipe (`config.recipe.preset`,
    `config.recipe.batch_size`, ...); `StudyConfig` has only the grid's own attributes.

    Example:
    >>> config = StudyConfig((0, 1), (1, 4), token_budget=4 * 16 * 64, preset="tiny")
    >>> config.num_steps, config.recipe.batch_size, config.recipe.elbo_samples
    (4, 16, 2)
    """

    ar_fractions: tuple
    repetitions: tuple
    token_budget: int
    seeds: tuple
    evaluations: int
    evaluation_batches: int
    data_dir: str
    recipe: RunSpec
    fit_budget: bool

    def __init__(
        self,
        ar_fractions,
        repetitions,
        token_budget,
        *,
        seeds=None,
        evaluations=8,
        evaluation_batches=8,
        data_dir=None,
        recipe=None,
        fit_budget=False,
        **settings,
    ):
        grid = sorted(set(settings) & set(GRID_SETTINGS))
        if grid:
            raise ValueError(
                f"{grid} are set per cell by the grid (ar_fractions, repetitions, "
                "token_budget), not in the study's recipe."
            )
        if recipe is None:
            recipe = RunSpec(**{**STUDY_DEFAULTS, **settings})
        elif settings:
            recipe = recipe.replace(**settings)
        fractions = tuple(
            check_float("ar_fractions", a, minimum=0.0, maximum=1.0) for a in ar_fractions
        )
        repetitions = tuple(check_int("repetitions", r, minimum=1) for r in repetitions)
        if not fractions or not repetitions:
            raise ValueError(
                "A study needs at least one α and one R; received "
                f"ar_fractions={ar_fractions!r}, repetitions={repetitions!r}."
            )
        check_int("token_budget", token_budget, minimum=1)
        check_int("evaluations", evaluations, minimum=1)
        if seeds is not None:
            if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
                raise TypeError(f"seeds must be a list of integers or None; received {seeds!r}.")
            seeds = tuple(sorted({check_int("seeds", seed, minimum=0) for seed in seeds}))
            if not seeds:
                raise ValueError("seeds must name at least one seed; received an empty list.")
        recipe = recipe.replace(token_budget=token_budget).resolved()
        check_int("sequence_length", recipe.sequence_length, minimum=2)
        check_int("batch_size", recipe.batch_size, minimum=1)
        check_int("elbo_samples", recipe.elbo_samples, minimum=1)
        if recipe.accumulation_steps != 1:
            raise ValueError(
                "A study feeds whole batches to fit(); accumulation_steps must be 1; "
                f"received accumulation_steps={recipe.accumulation_steps!r}."
            )
        values = dict(
            ar_fractions=tuple(sorted(set(fractions))),
            repetitions=tuple(sorted(set(repetitions))),
            token_budget=token_budget,
            seeds=seeds,
            evaluations=evaluations,
            evaluation_batches=evaluation_batches,
            data_dir=data_dir,
            recipe=recipe,
            fit_budget=bool(fit_budget),
        )
        for name, value in values.items():
            object.__setattr__(self, name, value)
        _check_budget(self)

    @property
    def num_steps(self):
        return self.token_budget // self.recipe.tokens_per_step

    def to_json(self):
        config = {
            name: getattr(self, name)
            for name in ("ar_fractions", "repetitions", "token_budget", "evaluations",
                         "evaluation_batches", "data_dir")
        }
        config["recipe"] = self.recipe.to_json()
        if self.seeds is not None:
            # Absent for a single-seed study, so that older study folders still resume.
            config["seeds"] = list(self.seeds)
        return config

    def with_token_budget(self, token_budget):
        """This study at another C, every other setting kept (`fit_budget` off)."""
        return StudyConfig(
            self.ar_fractions, self.repetitions, token_budget, seeds=self.seeds,
            evaluations=self.evaluations, evaluation_batches=self.evaluation_batches,
            data_dir=self.data_dir, recipe=self.recipe,
        )

    @property
    def seed_list(self):
        """The seeds every cell is trained with (the recipe's alone by default)."""
        return self.recipe_seeds if self.seeds is None else self.seeds

    @property
    def recipe_seeds(self):
        return (self.recipe.seed,)

    def cell_spec(self, cell):
        """The `RunSpec` of one cell: the recipe with the cell's α, R and budget."""
        return self.recipe.replace(
            ar_fraction=cell.ar_fraction, repetitions=cell.repetitions, seed=cell.seed
        )


def _check_budget(config):
    tokens_per_step = config.recipe.tokens_per_step
    steps, remainder = divmod(config.token_budget, tokens_per_step)
    bad = [r for r in config.repetitions if steps % r] if not remainder else []
    if remainder or not steps or bad:
        step = math.lcm(*config.repetitions) * tokens_per_step
        lower = max(step, config.token_budget // step * step)
        raise ValueError(
            f"token_budget={config.token_budget:,} must be a multiple of batch_size x "
            f"sequence_length x every R (here {step:,} = lcm of R "
            f"{list(config.repetitions)} x {tokens_per_step:,}), so that each cell runs "
            f"whole epochs of whole batches; e.g. {lower:,} or {lower + step:,}."
        )
