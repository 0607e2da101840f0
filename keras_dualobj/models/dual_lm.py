"""`DualLM`: one language model trained on autoregressive + masked-diffusion objectives.

The class itself holds what every part shares — construction, the forward pass,
`compile`, (de)serialisation and presets; the behaviour lives in one mixin per
concept (`dual_objective`, `generate`, `ar_generation`, `md_generation`, `scoring`).
"""

import inspect

import keras

from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import get as get_decoder
from keras_dualobj.generation.compiled import DecodingFunctionCache
from keras_dualobj.models.ar_generation import ARGeneration
from keras_dualobj.models.dual_backbone import DualBackbone
from keras_dualobj.models.dual_lm_preprocessor import DualLMPreprocessor
from keras_dualobj.models.dual_lm_preprocessor import pipeline_errors
from keras_dualobj.models.dual_lm_preprocessor import preprocess_fit_inputs
from keras_dualobj.models.dual_objective import DualObjective
from keras_dualobj.models.generate import Generate
from keras_dualobj.models.md_generation import MDGeneration
from keras_dualobj.models.scoring import Scoring
from keras_dualobj.models.task_inputs import resolve_attention_mode
from keras_dualobj.models.task_inputs import resolve_special_token_ids
from keras_dualobj.models.task_inputs import unpack_features
from keras_dualobj.models import task_presets
from keras_dualobj.models.presets import get_preset
from keras_dualobj.utils.validation import check_array_inputs
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int
from keras_dualobj.utils.validation import check_model_inputs
from keras_dualobj.utils.validation import check_tokenizer_compatible

MD_VARIANTS = ("shifted", "unshifted")


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualLM(DualObjective, Generate, ARGeneration, MDGeneration, Scoring, keras.Model):
    """A language model trained on a mix of autoregressive and masked-diffusion losses.

    One `DualBackbone`, no architectural change, two objectives (Samuel & Charpentier,
    arXiv 2512.14549). In every training step a fraction `ar_fraction` (α) of the rows
    of the batch are **AR rows** (causal attention, clean input, the logit at position i
    predicts token i + 1) and the rest **MD rows** (bidirectional attention; per row
    `t ~ U(0, 1)`; about a fraction t of the positions replaced by `<mask>`; with the
    default `md_variant="shifted"` the logit at i predicts token i + 1 where i + 1 was
    masked, weighted by `1 / t_hat`, the realised mask fraction). All rows share **one
    forward pass** with a per-row attention mask, so a step costs the same whatever α.
    The loss of a step is the mean over rows, i.e. in expectation
    `α · ar_loss_weight · L_AR + (1 − α) · L_MD (+ z_loss_weight · z-loss)`.
    When `α · batch_size` is not an integer, `floor(α · batch_size + u)` rows are AR
    (u uniform), so the AR share is exactly α in expectation; α = 1 is exactly pure AR,
    α = 0 exactly pure MD.

    Train with plain `compile()` / `fit()` on integer token ids `[batch, length]` or
    dicts with `token_ids` and optional `document_ids` (packed documents never attend to
    each other). No labels: the model builds its own targets. `fit()` logs `loss`,
    `ar_loss`, `md_loss`, `ar_accuracy` and `md_accuracy` (objectives with no rows,
    like the AR terms at α = 0, are left out of training logs). `evaluate()` always
    reports **both** held-out losses, whatever α: the exact AR loss over every row and
    the MD bound (ELBO) by the one estimator of `keras_dualobj.evaluation.md_bound`:
    `elbo_samples` stratified masks per row (k masked tokens uniform on 1..n, weight
    n/k), hashed from `elbo_seed` and each row's tokens, in nats per scored token. The
    masks do not depend on the batch size, the row's place in the batch or the backend,
    so repeated evaluations are identical and equal `score(mode="md")`. Each face's
    loss is averaged over the scored tokens of all batches (`Σ NLL / Σ tokens`, so the
    batch size and rows that score nothing change nothing) and `loss` is the objective
    of the two: `α · ar_loss_weight · ar_loss + (1 − α) · md_loss` (+ the z-loss).

    Calling the model returns logits `[batch, length, vocabulary_size]`; `mode`
    selects the attention, in the vocabulary the whole API uses: `"ar"` (causal, the
    default), `"md"` (bidirectional), or `"prefix"` (bidirectional over the first
    `prefix_lengths[b]` tokens of row b, causal after; pass `prefix_lengths` in the
    input dict). `"causal"` / `"bidirectional"` still work, with a
    `DeprecationWarning`.

    keras-hub conventions: `model.preprocessor` (a `DualLMPreprocessor`) lets
    `fit()`, `evaluate()` and `generate()` take raw strings; `compile(decoder=...)`
    sets the decoding method of `generate` (`compile(sampler=...)` is shorthand for an
    `ARDecoder`); `generate(inputs, max_length=...)`;
    `save_to_preset(dir)` / `DualLM.from_preset(dir)`; LoRA with
    `model.backbone.enable_lora(rank)`. Where it differs from keras-hub's `CausalLM`:
    no labels (the objective builds its own targets), `document_ids` instead of a
    padding mask, and decoders (`keras_dualobj.decoders`) where keras-hub has samplers:
    one model, two faces, several ways to decode.

    The class is assembled from one mixin per concept: `DualObjective` (training
    task: row split, corruption, loss terms, metrics), `Generate` (the `generate`
    entry point), `ARGeneration` (the KV-cache call functions), `MDGeneration`
    (`infill`) and `Scoring` (`score`, `evaluate_multiple_choice`).

    Args:
        backbone: a `DualBackbone`.
        ar_fraction: float in [0, 1]. Share α of AR rows. Defaults to `0.5`.
        md_variant: `"shifted"` (masked next-token prediction, the paper's) or
            `"unshifted"` (standard MDLM: the logit at a masked position predicts that
            position's token).
        ar_loss_weight: float >= 0. Multiplies the AR loss. Defaults to `1.0`; the
            reference code uses `2.0` (not explained in the paper).
        z_loss_weight: float >= 0. Weight of `logsumexp(logits)^2` on predicted
            positions (the reference: `1e-4`). Defaults to `0`.
        elbo_samples: int >= 1. Masks drawn per row for the MD ELBO in `evaluate()`.
        elbo_seed: int. Seed of those masks.
        seed: optional int. Seed of the training-time row split and masks.
        tokenizer: optional tokenizer; shorthand for
            `preprocessor=DualLMPreprocessor(tokenizer, backbone.max_sequence_length)`.
            Its special token ids are used unless given explicitly.
        preprocessor: optional `DualLMPreprocessor` (exclusive with `tokenizer`);
            saved with the model and its presets.
        bos_token_id, eos_token_id, pad_token_id, mask_token_id: ints. Special ids
            (never masked). Default to the tokenizer's, else `1, 2, 3, 4`.

    Example:
    >>> import numpy as np
    >>> import keras
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
    ...                         hidden_dim=32, intermediate_dim=64)
    >>> model = DualLM(backbone, ar_fraction=0.5, seed=0)
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    >>> token_ids = np.random.randint(5, 64, size=(8, 16)).astype("int32")
    >>> history = model.fit(token_ids, batch_size=4, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['ar_accuracy', 'ar_loss', 'loss', 'md_accuracy', 'md_loss']
    >>> tuple(model(token_ids[:1]).shape)  # causal logits; mode="md": bidirectional
    (1, 16, 64)
    """

    def __init__(
        self,
        backbone,
        ar_fraction=0.5,
        md_variant="shifted",
        ar_loss_weight=1.0,
        z_loss_weight=0.0,
        elbo_samples=1,
        elbo_seed=0,
        seed=None,
        tokenizer=None,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        mask_token_id=None,
        preprocessor=None,
        **kwargs,
    ):
        if not isinstance(backbone, DualBackbone):
            raise TypeError(
                f"`backbone` must be a `DualBackbone`; received {type(backbone).__name__}."
            )
        check_float("ar_fraction", ar_fraction, minimum=0.0, maximum=1.0)
        check_choice("md_variant", md_variant, MD_VARIANTS)
        check_float("ar_loss_weight", ar_loss_weight, minimum=0.0)
        check_float("z_loss_weight", z_loss_weight, minimum=0.0)
        check_int("elbo_samples", elbo_samples, minimum=1)
        check_int("elbo_seed", elbo_seed, minimum=0, maximum=2**31 - 1)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        if tokenizer is not None and preprocessor is not None:
            raise ValueError(
                "Pass `tokenizer` or `preprocessor` (which holds one), not both."
            )
        if preprocessor is not None and not isinstance(preprocessor, DualLMPreprocessor):
            raise TypeError(
                "`preprocessor` must be a `DualLMPreprocessor`; received "
                f"{type(preprocessor).__name__}."
            )
        special_ids = resolve_special_token_ids(
            tokenizer if preprocessor is None else preprocessor,
            backbone.vocabulary_size,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            mask_token_id=mask_token_id,
        )
        explicit_ids = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                            pad_token_id=pad_token_id, mask_token_id=mask_token_id)
        check_tokenizer_compatible(
            tokenizer if preprocessor is None else preprocessor.tokenizer,
            backbone.vocabulary_size,
            explicit_ids,
        )
        if tokenizer is not None:
            preprocessor = DualLMPreprocessor(
                tokenizer, sequence_length=backbone.max_sequence_length, **special_ids
            )

        super().__init__(**kwargs)

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.seed_generator = keras.random.SeedGenerator(seed, name="training_seed")
        self.elbo_seed_generator = keras.random.SeedGenerator(elbo_seed, name="elbo_seed")
        self.ar_loss_tracker = keras.metrics.Mean(name="ar_loss")
        self.md_loss_tracker = keras.metrics.Mean(name="md_loss")
        self.ar_accuracy_tracker = keras.metrics.Mean(name="ar_accuracy")
        self.md_accuracy_tracker = keras.metrics.Mean(name="md_accuracy")
        self.z_loss_tracker = (
            keras.metrics.Mean(name="z_loss") if z_loss_weight > 0 else None
        )

        # === Config ===
        self.ar_fraction = float(ar_fraction)
        self.md_variant = md_variant
        self.ar_loss_weight = float(ar_loss_weight)
        self.z_loss_weight = float(z_loss_weight)
        self.elbo_samples = elbo_samples
        self.elbo_seed = elbo_seed
        self.seed = seed
        self.bos_token_id = special_ids["bos_token_id"]
        self.eos_token_id = special_ids["eos_token_id"]
        self.pad_token_id = special_ids["pad_token_id"]
        self.mask_token_id = special_ids["mask_token_id"]
        self.decoder = None
        # Every variable exists once the (built) backbone is attached.
        self.built = True

    @property
    def tokenizer(self):
        """The preprocessor's tokenizer, or `None`."""
        return None if self.preprocessor is None else self.preprocessor.tokenizer

    @property
    def special_token_ids(self):
        """Ids never masked by the MD objective."""
        return (self.bos_token_id, self.eos_token_id, self.pad_token_id, self.mask_token_id)

    # --- Forward passes -------------------------------------------------------

    def __call__(self, inputs, *args, **kwargs):
        # Checked here, outside Keras' wrapper ("Exception encountered when calling
        # DualLM.call()"), so that a bad input gets our message alone. A training step
        # (symbolic or compiled) has its inputs checked by `fit`, and its shapes by `call`.
        if not kwargs.get("training"):
            check_model_inputs(
                unpack_features(inputs),
                self.backbone.vocabulary_size,
                self.backbone.max_sequence_length,
            )
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=False, mode="ar"):
        features = unpack_features(inputs)
        check_model_inputs(
            features,
            self.backbone.vocabulary_size,
            self.backbone.max_sequence_length,
            check_values=False,
        )
        token_ids, document_ids = features["token_ids"], features["document_ids"]
        if training:
            return self._dual_training_forward(token_ids, document_ids)
        mode = resolve_attention_mode(mode)
        prefix_lengths = features.get("prefix_lengths")
        if (mode == "prefix") != (prefix_lengths is not None):
            raise ValueError(
                'Pass `prefix_lengths` in the input dict exactly when mode="prefix"; '
                f"received mode={mode!r} with prefix_lengths "
                f"{'given' if prefix_lengths is not None else 'missing'}."
            )
        if mode != "prefix":
            fill = 0 if mode == "ar" else keras.ops.shape(token_ids)[1]
            prefix_lengths = keras.ops.full(
                (keras.ops.shape(token_ids)[0],), fill, dtype="int32"
            )
        return self.logits(token_ids, document_ids, prefix_lengths)

    def logits(self, token_ids, document_ids, prefix_lengths):
        """Logits `[batch, length, vocab]` for explicit per-row prefix lengths.

        `prefix_lengths[b] = 0` is causal, `>= length` bidirectional (see `DualBackbone`).
        """
        ops = keras.ops
        # All three as tensors: a functional call rejects NumPy mixed with tensors.
        hidden_states = self.backbone(
            {
                "token_ids": ops.cast(token_ids, "int32"),
                "document_ids": ops.cast(document_ids, "int32"),
                "prefix_lengths": ops.cast(prefix_lengths, "int32"),
            }
        )
        return self.backbone.token_embedding(hidden_states, reverse=True)

    # --- Keras plumbing -------------------------------------------------------

    def compile(self, optimizer="auto", loss=None, metrics=None, sampler=None, decoder=None,
                **kwargs):
        """Configures training and the decoding method of `generate`.

        Args:
            optimizer: `"auto"` is AdamW(1e-3, weight decay 0.01); or any Keras
                optimizer (see `keras_dualobj.training.build_optimizer`).
            loss, metrics: not accepted: the objective and its metrics are fixed by
                the model (see the class docstring).
            sampler: keras-hub's `CausalLM.compile` argument, shorthand for
                `decoder=ARDecoder(sampler)`: `"greedy"`, `"top_k"`, `"top_p"`,
                `"random"` or a `keras_hub.samplers.Sampler`.
            decoder: the decoder `generate` uses when given none: a `Decoder` or a
                name (`keras_dualobj.decoders.get`). `None` (and no `sampler`) keeps
                `ARDecoder()`.
            **kwargs: passed to `keras.Model.compile`. `jit_compile="auto"` (Keras'
                default) compiles the step with XLA on JAX and runs it eagerly on
                PyTorch: `jit_compile=True` (`torch.compile`) made the pilot-sized step
                1.44x faster on a 2-core CPU but took 13 minutes to compile, so it
                pays off only beyond ~1,300 steps (docs/performance.md §1).

        Example:
        >>> from keras_dualobj.models import DualBackbone
        >>> model = DualLM(DualBackbone(64, 1, 2, 32, 48))
        >>> model.compile(decoder="md")
        >>> model.decoder
        MDDecoder(seed=None, num_steps=None, block_length=None, remasking='confidence', temperature=0.5, threshold=None, prefix_cache=False)
        >>> model.compile(sampler="greedy")
        >>> model.decoder.sampler
        'greedy'
        """
        if loss is not None or metrics is not None:
            raise ValueError(
                "`DualLM` computes its own dual objective and metrics; compile() takes "
                f"no `loss` or `metrics`; received loss={loss!r}, metrics={metrics!r}."
            )
        if sampler is not None and decoder is not None:
            raise ValueError(
                "`sampler` is shorthand for `decoder=ARDecoder(sampler)`: pass one of them; "
                f"received sampler={sampler!r}, decoder={decoder!r}."
            )
        if sampler is not None:
            decoder = ARDecoder(sampler)
        decoder = None if decoder is None else get_decoder(decoder)
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
        super().compile(optimizer=optimizer, **kwargs)
        self.decoder = decoder
        if decoder is not None:
            self._compile_config.config["decoder"] = keras.saving.serialize_keras_object(decoder)

    def compile_from_config(self, config):
        # Keras skips models with a custom compile(); ours accepts its own config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        x, batch_size = preprocess_fit_inputs(self.preprocessor, x, batch_size)
        # Checked before the compiled step: an error inside a JAX step leaves the
        # model's variables unusable.
        check_array_inputs(x, self.backbone.vocabulary_size, self.backbone.max_sequence_length, y)
        with pipeline_errors():
            return super().fit(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        # Strings through the preprocessor, as keras-hub tasks take them.
        x, batch_size = preprocess_fit_inputs(self.preprocessor, x, batch_size)
        check_array_inputs(x, self.backbone.vocabulary_size, self.backbone.max_sequence_length)
        with pipeline_errors():
            return super().predict(x, batch_size=batch_size, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, return_dict=False, **kwargs):
        x, batch_size = preprocess_fit_inputs(self.preprocessor, x, batch_size)
        check_array_inputs(x, self.backbone.vocabulary_size, self.backbone.max_sequence_length, y)
        with pipeline_errors():
            logs = super().evaluate(x, y, batch_size=batch_size, return_dict=True, **kwargs)
        logs["loss"] = self.held_out_loss(logs)
        if return_dict:
            return logs
        return [logs[metric.name] for metric in self.metrics if metric.name in logs]

    def _decoding_function(self, key, build):
        """The compiled decoding/scoring function for `key`, built once per model."""
        if getattr(self, "_decoding_functions", None) is None:
            self._decoding_functions = DecodingFunctionCache()
        return self._decoding_functions.get(key, build)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "preprocessor": (
                    None
                    if self.preprocessor is None
                    else keras.saving.serialize_keras_object(self.preprocessor)
                ),
                "ar_fraction": self.ar_fraction,
                "md_variant": self.md_variant,
                "ar_loss_weight": self.ar_loss_weight,
                "z_loss_weight": self.z_loss_weight,
                "elbo_samples": self.elbo_samples,
                "elbo_seed": self.elbo_seed,
                "seed": self.seed,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id,
                "pad_token_id": self.pad_token_id,
                "mask_token_id": self.mask_token_id,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("backbone", "preprocessor", "tokenizer"):  # "tokenizer": older saves
            if isinstance(config.get(name), dict):
                config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    # --- Presets --------------------------------------------------------------

    @classmethod
    def from_preset(cls, preset, tokenizer=None, load_weights=True, **kwargs):
        """A `DualLM` from a named architecture or a saved preset directory.

        - A name of `keras_dualobj.models.presets` (`"tiny"` ... `"paper-470m"`): a
          fresh model of that architecture. Keyword arguments that `DualBackbone`
          takes (e.g. `vocabulary_size`, `dropout`) go to the backbone, the rest
          (e.g. `ar_fraction`, `seed`) to `DualLM`; with a `tokenizer` and no
          `vocabulary_size`, the vocabulary is the tokenizer's. The byte presets
          (`nano`, `tiny`, `small`) come with a `ByteTokenizer`, so they take strings.
        - A directory written by `save_to_preset` (keras-hub's layout): the saved
          model with its weights (unless `load_weights=False`), preprocessor and
          tokenizer, loaded by keras-hub's preset loader.

        Example:
        >>> model = DualLM.from_preset("tiny", ar_fraction=0.25, vocabulary_size=300)
        >>> model.ar_fraction, model.backbone.vocabulary_size
        (0.25, 300)
        >>> len(DualLM.from_preset("nano").generate("ROMEO:", max_new_tokens=4)) > 0
        True
        """
        if not task_presets.is_named_architecture(preset):
            if tokenizer is not None:
                raise ValueError(
                    "A saved preset holds its own tokenizer; pass `tokenizer` only with "
                    f"a named architecture; received preset={preset!r}."
                )
            return task_presets.load_task_preset(cls, preset, load_weights, **kwargs)
        backbone_arguments = set(inspect.signature(DualBackbone.__init__).parameters)
        backbone_kwargs = {k: v for k, v in kwargs.items() if k in backbone_arguments}
        task_kwargs = {k: v for k, v in kwargs.items() if k not in backbone_arguments}
        if tokenizer is None and get_preset(preset)["training"]["tokenizer"] == "byte":
            # A byte preset needs no trained tokenizer: it takes strings as it is.
            from keras_dualobj.data import ByteTokenizer

            tokenizer = ByteTokenizer()
        if tokenizer is not None and "vocabulary_size" not in backbone_kwargs:
            backbone_kwargs["vocabulary_size"] = int(tokenizer.vocabulary_size())
        backbone = DualBackbone.from_preset(preset, **backbone_kwargs)
        return cls(backbone, tokenizer=tokenizer, **task_kwargs)

    def save_to_preset(self, preset_dir, max_shard_size=10, overwrite=False):
        """Saves the model as a keras-hub preset directory (see `task_presets`).

        Args:
            preset_dir: the folder; it must be missing or empty, so that the
                preset is never merged with other files.
            max_shard_size: keras-hub's, in GB.
            overwrite: write into a non-empty folder anyway (its preset files are
                replaced, other files stay).

        Example:
        >>> import tempfile
        >>> from keras_dualobj.data import ByteTokenizer
        >>> model = DualLM.from_preset("tiny", tokenizer=ByteTokenizer())
        >>> folder = tempfile.mkdtemp()
        >>> model.save_to_preset(folder)
        >>> restored = DualLM.from_preset(folder)
        >>> type(restored.preprocessor).__name__, restored.backbone.num_layers
        ('DualLMPreprocessor', 2)
        """
        task_presets.save_task_preset(self, preset_dir, max_shard_size, overwrite=overwrite)

    def has_task_weights(self):
        """Whether the task holds weights beyond its backbone (keras-hub's hook): no."""
        return False
