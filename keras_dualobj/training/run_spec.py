"""`RunSpec`: every setting of a training run, with each default written once.

A run is a preset architecture, the dual objective's options, a corpus and its
repetition plan, and the optimiser recipe. `keras-dualobj train`, the repetition study
(one `RunSpec` per cell) and Python users build the model, the optimizer and the data
from a `RunSpec`, so they cannot disagree on a default. Settings left `None` that a
preset provides (`tokenizer`, `sequence_length`, `batch_size`, `optimizer`,
`learning_rate`, `token_budget`) are filled in by `resolved()` from
`keras_dualobj.models.presets`; `to_json()` of a resolved spec is the run's identity
(`run.json`), so a resumed run must match it.
"""

import dataclasses

# Only light imports here: the command line reads the settings before Keras is imported;
# the methods that build import what they build with.
from keras_dualobj.models.presets import get_preset
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

# Settings a preset provides when the spec leaves them `None`.
PRESET_TRAINING_FIELDS = ("tokenizer", "sequence_length", "batch_size", "optimizer", "learning_rate")
# Keras dtype policies a run may train under: variables stay float32 in the mixed
# ones, activations are 16-bit, and the losses are computed in float32.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What a training run trains, on what data, with which recipe.

    Attributes:
        preset: architecture (`keras_dualobj.models.presets`): `tiny`, `small`,
            `base` or `paper-470m`.
        ar_fraction, md_variant, ar_loss_weight, z_loss_weight, elbo_samples:
            the dual objective (see `DualLM`).
        dropout: residual dropout of the backbone.
        source, path, tfds_name, local_copy, document_split, encoding: the corpus
            (see `keras_dualobj.data.prepare_data`).
        tokenizer: `"byte"`, `"bpe"` or a saved tokenizer folder (default: the
            preset's); `vocabulary_size`: for `"bpe"`.
        sequence_length, batch_size: tokens per row, rows per step (default: the
            preset's).
        repetitions, unique_tokens, token_budget: the repetition plan: R epochs over
            U unique tokens, C = U x R (default: the preset's C at R = 1).
        fit_repetitions: let the plan raise R until C / R fits the corpus
            (`plan_repetition`). Default (`None`): on when the spec gives none of
            `repetitions`, `unique_tokens` and `token_budget`, so that the preset's
            own budget runs on a small corpus (the offline fallback), repeating data
            and saying so; a budget or R the user gives is kept exactly.
        optimizer, learning_rate: `"muon"` or `"adamw"` and the peak rate (default:
            the preset's); warmup_fraction, decay_fraction, decay_shape,
            weight_decay, clip_norm: the rest of the recipe (`build_optimizer`).
        seed: initialisation, row split, masks and data order.
        precision: Keras dtype policy of the backbone, one of `PRECISIONS`
            (`mixed_float16` adds Keras' dynamic loss scaling).
        accumulation_steps: micro-batches per optimizer update; `batch_size`
            stays the rows of one update (see `build_optimizer`).
        backbone_overrides: dict of `DualBackbone` arguments replacing the
            preset's (e.g. a tiny `paper-470m` for a dry run), or `None`.
        log_every: steps per logged segment (checkpoints fall on segment ends).
        init: a saved `DualLM` (`.keras`, e.g. from `keras-dualobj convert
            --from-keras-hub`) that the run continues training, with its own
            architecture and tokenizer, instead of a fresh model of the preset (whose
            training recipe still applies). `None`: a fresh model.

    Example:
    >>> spec = RunSpec(preset="tiny", ar_fraction=0.25).resolved()
    >>> spec.sequence_length, spec.optimizer, spec.warmup_fraction
    (64, 'muon', 0.01)
    >>> model = spec.build_model(vocabulary_size=272)
    >>> spec.compile(model, total_steps=10)
    >>> model.ar_fraction, type(model.optimizer).__name__
    (0.25, 'MatrixMuon')
    """

    preset: str = "small"
    ar_fraction: float = 0.5
    md_variant: str = "shifted"
    ar_loss_weight: float = 1.0
    z_loss_weight: float = 0.0
    elbo_samples: int = 1
    dropout: float = 0.0
    source: str = "auto"
    path: str = None
    tfds_name: str = "tiny_shakespeare"
    local_copy: str = None
    document_split: str = "paragraphs"
    encoding: str = "utf-8"
    tokenizer: str = None
    vocabulary_size: int = 2048
    sequence_length: int = None
    batch_size: int = None
    repetitions: int = None
    unique_tokens: int = None
    token_budget: int = None
    fit_repetitions: bool = None
    optimizer: str = None
    learning_rate: float = None
    warmup_fraction: float = 0.01
    decay_fraction: float = 0.25
    decay_shape: str = "linear"
    weight_decay: float = 0.1
    clip_norm: float = None
    seed: int = 0
    log_every: int = 10
    precision: str = "float32"
    accumulation_steps: int = 1
    backbone_overrides: dict = None
    init: str = None

    @classmethod
    def field_names(cls):
        """Every setting's name, in declaration order."""
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_json(cls, config):
        """A spec from `to_json()` output; unknown keys are an error.

        Keys a run stores beside the spec (`format`) are ignored.
        """
        config = {key: value for key, value in config.items() if key != "format"}
        # Runs stored before these settings existed trained with their defaults.
        config.setdefault("precision", "float32")
        config.setdefault("accumulation_steps", 1)
        config.setdefault("backbone_overrides", None)
        config.setdefault("encoding", "utf-8")
        config.setdefault("init", None)
        unknown = sorted(set(config) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"Unknown run settings {unknown}; accepted are {cls.field_names()}.")
        return cls(**config)

    def to_json(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with `changes` (unknown names are an error)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(f"Unknown run settings {unknown}; accepted are {self.field_names()}.")
        return dataclasses.replace(self, **changes)

    def resolved(self):
        """This spec with the preset's training defaults filled in (see the module)."""
        training = get_preset(self.preset)["training"]
        changes = {
            name: training[name]
            for name in PRESET_TRAINING_FIELDS
            if getattr(self, name) is None
        }
        plan_given = (self.repetitions, self.unique_tokens, self.token_budget) != (None,) * 3
        if self.fit_repetitions is None:
            changes["fit_repetitions"] = not plan_given
        if self.repetitions is None:
            changes["repetitions"] = 1
        if self.token_budget is None and self.unique_tokens is None:
            changes["token_budget"] = training["token_budget"]
        return dataclasses.replace(self, **changes)

    @property
    def tokens_per_step(self):
        return self.batch_size * self.sequence_length

    @property
    def micro_batch_size(self):
        """Rows per `fit()` step: `batch_size / accumulation_steps`."""
        check_choice("precision", self.precision, PRECISIONS)
        check_int("accumulation_steps", self.accumulation_steps, minimum=1)
        if self.batch_size % self.accumulation_steps:
            raise ValueError(
                f"`batch_size`={self.batch_size} does not split into "
                f"accumulation_steps={self.accumulation_steps} equal micro-batches; use a "
                "batch size that is a multiple of it."
            )
        return self.batch_size // self.accumulation_steps

    def _require_resolved(self):
        missing = [
            name
            for name in PRESET_TRAINING_FIELDS + ("repetitions",)
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(
                f"RunSpec settings {missing} are unset; call `spec.resolved()` first to "
                "take the preset's."
            )

    def load_initial_model(self):
        """The saved `DualLM` of `init`, its tokenizer told the model's special ids.

        Data packing reads `bos_token_id` / `eos_token_id` from the tokenizer;
        a keras-hub tokenizer has other names for them (or none).
        """
        from keras_dualobj.models.saving import load_model

        model = load_model(self.init)
        bad = {"backbone_overrides": self.backbone_overrides, "precision": self.precision,
               "dropout": self.dropout}
        bad = {name: value for name, value in bad.items()
               if value != dataclasses.fields(self)[self.field_names().index(name)].default}
        if bad:
            raise ValueError(
                f"`init` continues the saved model as it is; {bad} would change its "
                "architecture: leave them out."
            )
        if self.sequence_length > model.backbone.max_sequence_length:
            raise ValueError(
                f"sequence_length={self.sequence_length} exceeds the initial model's "
                f"max_sequence_length={model.backbone.max_sequence_length}."
            )
        if model.tokenizer is not None:
            for name in ("bos_token_id", "eos_token_id"):
                setattr(model.tokenizer, name, getattr(model, name))
        return model

    def build_model(self, tokenizer=None, vocabulary_size=None, initial_model=None):
        """A fresh `DualLM` of the preset (not compiled), or `initial_model`'s.

        The vocabulary is the tokenizer's (or `vocabulary_size`); the backbone's
        `max_sequence_length` is at least `sequence_length`. Seeds Keras first.
        With `initial_model` (`load_initial_model()`), its backbone and
        preprocessor under this spec's objective settings.
        """
        import keras

        from keras_dualobj.models import DualLM

        self._require_resolved()
        if initial_model is not None:
            keras.utils.set_random_seed(self.seed)
            return DualLM(
                initial_model.backbone, preprocessor=initial_model.preprocessor,
                ar_fraction=self.ar_fraction, md_variant=self.md_variant,
                ar_loss_weight=self.ar_loss_weight, z_loss_weight=self.z_loss_weight,
                elbo_samples=self.elbo_samples, seed=self.seed,
                **{name: getattr(initial_model, name) for name in (
                    "bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")},
            )
        preset = get_preset(self.preset)
        backbone_kwargs = dict(self.backbone_overrides or {})
        self.micro_batch_size  # checks precision and accumulation first
        if self.precision != "float32":
            backbone_kwargs["dtype"] = self.precision
        if vocabulary_size is not None:
            backbone_kwargs["vocabulary_size"] = vocabulary_size
        keras.utils.set_random_seed(self.seed)
        return DualLM.from_preset(
            self.preset,
            tokenizer=tokenizer,
            max_sequence_length=max(
                self.sequence_length,
                backbone_kwargs.pop("max_sequence_length", preset["backbone"]["max_sequence_length"]),
            ),
            dropout=self.dropout,
            ar_fraction=self.ar_fraction,
            md_variant=self.md_variant,
            ar_loss_weight=self.ar_loss_weight,
            z_loss_weight=self.z_loss_weight,
            elbo_samples=self.elbo_samples,
            seed=self.seed,
            **backbone_kwargs,
        )

    def build_optimizer(self, model, total_steps):
        """The recipe's optimizer for `model` over `total_steps` updates."""
        from keras_dualobj.optimization import build_optimizer

        self._require_resolved()
        return build_optimizer(
            model,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            total_steps=total_steps,
            warmup_fraction=self.warmup_fraction,
            decay_fraction=self.decay_fraction,
            decay_shape=self.decay_shape,
            weight_decay=self.weight_decay,
            clip_norm=self.clip_norm,
            accumulation_steps=self.accumulation_steps,
        )

    def compile(self, model, total_steps):
        """`model.compile(optimizer=self.build_optimizer(model, total_steps))`.

        `total_steps` counts optimizer updates; under `mixed_float16` the optimizer
        is wrapped in `keras.optimizers.LossScaleOptimizer`.
        """
        import keras

        optimizer = self.build_optimizer(model, total_steps)
        if self.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer)

    def prepare_data(self, data_dir=None, tokenizer=None, verbose=True, **overrides):
        """`keras_dualobj.data.prepare_data` with this spec's corpus and plan.

        Args:
            data_dir: TFDS data directory (where TFDS writes; not part of the run).
            tokenizer: overrides the spec's (e.g. the saved tokenizer of a resumed run).
            verbose: print what was used.
            **overrides: other `prepare_data` arguments (e.g. `repetitions`).
        """
        self._require_resolved()
        arguments = dict(
            sequence_length=self.sequence_length,
            batch_size=self.batch_size,
            tokenizer=self.tokenizer if tokenizer is None else tokenizer,
            vocabulary_size=self.vocabulary_size,
            repetitions=self.repetitions,
            unique_tokens=self.unique_tokens,
            token_budget=self.token_budget,
            fit_repetitions=bool(self.fit_repetitions),
            seed=self.seed,
            path=self.path,
            tfds_name=self.tfds_name,
            local_copy=self.local_copy,
            document_split=self.document_split,
            encoding=self.encoding,
            data_dir=data_dir,
            verbose=verbose,
        )
        arguments.update(overrides)
        from keras_dualobj.data import prepare_data

        return prepare_data(self.source, **arguments)
