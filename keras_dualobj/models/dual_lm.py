"""`DualLM`: one language model trained on autoregressive + masked-diffusion objectives."""

import keras
import numpy as np
from keras import ops

from keras_dualobj.evaluation.likelihood import check_scoring_inputs
from keras_dualobj.evaluation.likelihood import sequence_nll
from keras_dualobj.evaluation.md_elbo import md_nll_bound
from keras_dualobj.evaluation.multiple_choice import SCORING_MODES
from keras_dualobj.evaluation.multiple_choice import evaluate_multiple_choice
from keras_dualobj.generation.ar_decoding import ar_decode
from keras_dualobj.generation.ar_decoding import ar_decode_uncached
from keras_dualobj.generation.ar_decoding import check_sampler_options
from keras_dualobj.generation.ar_decoding import get_sampler
from keras_dualobj.generation.compiled import DecodingFunctionCache
from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.md_decoding import check_md_options
from keras_dualobj.generation.md_decoding import md_decode
from keras_dualobj.generation.md_decoding import md_decode_step
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import decode_outputs
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.generation.prompts import truncate_at_stop
from keras_dualobj.models.dual_backbone import DualBackbone
from keras_dualobj.objectives.losses import ar_loss
from keras_dualobj.objectives.losses import md_loss
from keras_dualobj.objectives.losses import token_accuracy
from keras_dualobj.objectives.losses import z_loss
from keras_dualobj.objectives.masking import maskable_positions
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.objectives.masking import sample_ar_rows
from keras_dualobj.objectives.masking import sample_masked_positions
from keras_dualobj.utils.validation import check_array_inputs
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int
from keras_dualobj.utils.validation import check_model_inputs
from keras_dualobj.utils.validation import check_tokenizer_compatible

ATTENTION_MODES = ("causal", "bidirectional", "prefix")
MD_VARIANTS = ("shifted", "unshifted")
GENERATION_MODES = ("ar", "md")
# The reference layout (DESIGN.md §1): <unk>=0 <s>=1 </s>=2 <pad>=3 <mask>=4.
DEFAULT_SPECIAL_TOKEN_IDS = {
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "mask_token_id": 4,
}


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualLM(keras.Model):
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
    an unbiased Monte-Carlo estimate of the MD bound (ELBO): `elbo_samples` masks
    per row with stratified mask rates (sample s draws t in [s/S, (s+1)/S)), a
    number of masked tokens k uniform on 1..n and weight n/k (see
    `sample_masked_positions(exact_bound=True)`), drawn from `elbo_seed`, which is
    reset at every `evaluate()` call so repeated evaluations are identical.

    Calling the model returns logits `[batch, length, vocabulary_size]`; `mode`
    selects the attention: `"causal"` (default), `"bidirectional"`, or `"prefix"`
    (bidirectional over the first `prefix_lengths[b]` tokens of row b, causal after;
    pass `prefix_lengths` in the input dict).

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
        tokenizer: optional tokenizer saved with the model; its special token ids
            are used unless given explicitly.
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
    >>> tuple(model(token_ids[:1]).shape)  # causal logits
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
        check_int("elbo_seed", elbo_seed, minimum=0)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        special_ids = _resolve_special_token_ids(
            tokenizer,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            mask_token_id=mask_token_id,
        )
        explicit_ids = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                            pad_token_id=pad_token_id, mask_token_id=mask_token_id)
        check_tokenizer_compatible(tokenizer, backbone.vocabulary_size, explicit_ids)
        for name, value in special_ids.items():
            check_int(name, value, minimum=0)
            if value >= backbone.vocabulary_size:
                raise ValueError(
                    f"`{name}`={value} is not a valid id for a vocabulary of "
                    f"{backbone.vocabulary_size} tokens (ids 0..{backbone.vocabulary_size - 1})."
                )
        if len(set(special_ids.values())) != len(special_ids):
            raise ValueError(f"Special token ids must be distinct; received {special_ids}.")

        super().__init__(**kwargs)

        # === Layers ===
        self.backbone = backbone
        self.tokenizer = tokenizer
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
        # Every variable exists once the (built) backbone is attached.
        self.built = True

    # --- Forward passes -------------------------------------------------------

    @property
    def special_token_ids(self):
        """Ids never masked by the MD objective."""
        return (self.bos_token_id, self.eos_token_id, self.pad_token_id, self.mask_token_id)

    @property
    def md_shifted(self):
        return self.md_variant == "shifted"

    def call(self, inputs, training=False, mode="causal"):
        features = _unpack_features(inputs)
        check_model_inputs(features, self.backbone.vocabulary_size, self.backbone.max_sequence_length)
        token_ids, document_ids = features["token_ids"], features["document_ids"]
        if training:
            return self._dual_training_forward(token_ids, document_ids)
        check_choice("mode", mode, ATTENTION_MODES)
        prefix_lengths = features.get("prefix_lengths")
        if (mode == "prefix") != (prefix_lengths is not None):
            raise ValueError(
                'Pass `prefix_lengths` in the input dict exactly when mode="prefix"; '
                f"received mode={mode!r} with prefix_lengths "
                f"{'given' if prefix_lengths is not None else 'missing'}."
            )
        if mode != "prefix":
            fill = 0 if mode == "causal" else ops.shape(token_ids)[1]
            prefix_lengths = ops.full((ops.shape(token_ids)[0],), fill, dtype="int32")
        return self.logits(token_ids, document_ids, prefix_lengths)

    def logits(self, token_ids, document_ids, prefix_lengths):
        """Logits `[batch, length, vocab]` for explicit per-row prefix lengths.

        `prefix_lengths[b] = 0` is causal, `>= length` bidirectional (see `DualBackbone`).
        """
        # All three as tensors: a functional call rejects NumPy mixed with tensors.
        hidden_states = self.backbone(
            {
                "token_ids": ops.cast(token_ids, "int32"),
                "document_ids": ops.cast(document_ids, "int32"),
                "prefix_lengths": ops.cast(prefix_lengths, "int32"),
            }
        )
        return self.backbone.token_embedding(hidden_states, reverse=True)

    def corrupt(self, token_ids, document_ids, seed, mask_rate=None, exact_bound=False):
        """Masks every row for the MD objective.

        Returns a dict with `input_ids` (masked positions replaced by `<mask>`),
        `masked_positions`, `maskable_positions` and `mask_fraction`; `mask_rate` and
        `exact_bound` are those of `keras_dualobj.objectives.sample_masked_positions`
        (training uses the reference rule, evaluation the exact-bound one).
        """
        maskable = maskable_positions(
            token_ids, document_ids, self.special_token_ids, shifted=self.md_shifted
        )
        masked, mask_fraction = sample_masked_positions(
            maskable, seed, mask_rate=mask_rate, exact_bound=exact_bound
        )
        return {
            "input_ids": ops.where(masked, self.mask_token_id, token_ids),
            "masked_positions": masked,
            "maskable_positions": maskable,
            "mask_fraction": mask_fraction,
        }

    def _dual_training_forward(self, token_ids, document_ids):
        batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        # α = 0 and α = 1 are decided statically, so the pure objectives are exact and
        # pay nothing for the other one.
        if self.ar_fraction == 1.0:
            ar_rows = ops.ones((batch_size,), dtype="bool")
        elif self.ar_fraction == 0.0:
            ar_rows = ops.zeros((batch_size,), dtype="bool")
        else:
            ar_rows = sample_ar_rows(batch_size, self.ar_fraction, self.seed_generator)
        forward = {"token_ids": token_ids, "document_ids": document_ids, "ar_rows": ar_rows}
        input_ids = token_ids
        prefix_lengths = ops.zeros((batch_size,), dtype="int32")
        if self.ar_fraction < 1.0:
            corruption = self.corrupt(token_ids, document_ids, self.seed_generator)
            md_rows = ops.logical_not(ar_rows)
            corruption["masked_positions"] = ops.logical_and(
                corruption["masked_positions"], md_rows[:, None]
            )
            input_ids = ops.where(
                corruption["masked_positions"], self.mask_token_id, token_ids
            )
            prefix_lengths = ops.where(ar_rows, 0, length)
            forward.update(corruption)
        forward["logits"] = self.logits(input_ids, document_ids, prefix_lengths)
        return forward

    # --- Loss -----------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "`DualLM` builds its own targets from the token ids: pass only inputs "
                "(token ids or a dict with `token_ids` and optional `document_ids`), "
                f"no labels or sample weights; received y={type(y).__name__}, "
                f"sample_weight={type(sample_weight).__name__}."
            )
        if training:
            terms = self._training_terms(y_pred)
        else:
            terms = self._evaluation_terms(x, y_pred)
        ar_share, md_share = terms["ar_share"], terms["md_share"]
        loss = ar_share * self.ar_loss_weight * terms["ar_loss"]
        loss = loss + md_share * terms["md_loss"]
        for name, tracker in (
            ("ar_loss", self.ar_loss_tracker),
            ("ar_accuracy", self.ar_accuracy_tracker),
        ):
            tracker.update_state(terms[name], sample_weight=terms["ar_rows"])
        for name, tracker in (
            ("md_loss", self.md_loss_tracker),
            ("md_accuracy", self.md_accuracy_tracker),
        ):
            tracker.update_state(terms[name], sample_weight=terms["md_rows"])
        if self.z_loss_tracker is not None:
            loss = loss + self.z_loss_weight * terms["z_loss"]
            self.z_loss_tracker.update_state(terms["z_loss"])
        return loss

    def _training_terms(self, forward):
        token_ids, document_ids = forward["token_ids"], forward["document_ids"]
        logits, ar_rows = forward["logits"], forward["ar_rows"]
        batch_size = ops.cast(ops.shape(token_ids)[0], "float32")
        num_ar_rows = ops.sum(ops.cast(ar_rows, "float32"))
        terms = {
            "ar_rows": num_ar_rows,
            "md_rows": batch_size - num_ar_rows,
            "ar_share": num_ar_rows / batch_size,
            "md_share": 1.0 - num_ar_rows / batch_size,
        }
        zero = ops.zeros((), "float32")
        terms.update(ar_loss=zero, ar_accuracy=zero, md_loss=zero, md_accuracy=zero)
        z_terms = []
        if self.ar_fraction > 0.0:
            ar_targets = ops.logical_and(
                next_token_targets(token_ids, document_ids, (self.pad_token_id,)),
                ar_rows[:, None],
            )
            terms["ar_loss"] = ar_loss(
                token_ids, logits, document_ids, self.pad_token_id, row_mask=ar_rows
            )
            terms["ar_accuracy"] = token_accuracy(logits, token_ids, ar_targets)
            z_terms.append((terms["ar_share"], logits, ar_targets, True))
        if self.ar_fraction < 1.0:
            md_rows = ops.logical_not(ar_rows)
            terms["md_loss"] = md_loss(
                token_ids,
                logits,
                forward["masked_positions"],
                forward["mask_fraction"],
                forward["maskable_positions"],
                shifted=self.md_shifted,
                row_mask=md_rows,
            )
            terms["md_accuracy"] = token_accuracy(
                logits, token_ids, forward["masked_positions"], shifted=self.md_shifted
            )
            z_terms.append(
                (terms["md_share"], logits, forward["masked_positions"], self.md_shifted)
            )
        if self.z_loss_tracker is not None:
            terms["z_loss"] = sum(
                share * z_loss(z_logits, positions, shifted)
                for share, z_logits, positions, shifted in z_terms
            )
        return terms

    def _evaluation_terms(self, x, causal_logits):
        features = _unpack_features(x)
        token_ids, document_ids = features["token_ids"], features["document_ids"]
        batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        ar_targets = next_token_targets(token_ids, document_ids, (self.pad_token_id,))

        md_token_ids = ops.tile(token_ids, (self.elbo_samples, 1))
        md_document_ids = ops.tile(document_ids, (self.elbo_samples, 1))
        # Stratified mask rates: the S samples of a row cover t in [s/S, (s+1)/S).
        num_md_rows = ops.shape(md_token_ids)[0]
        stratum = ops.repeat(ops.arange(self.elbo_samples, dtype="float32"), batch_size)
        mask_rate = (
            stratum + keras.random.uniform((num_md_rows,), seed=self.elbo_seed_generator)
        ) / self.elbo_samples
        corruption = self.corrupt(
            md_token_ids,
            md_document_ids,
            self.elbo_seed_generator,
            mask_rate=mask_rate,
            exact_bound=True,
        )
        md_logits = self.logits(
            corruption["input_ids"],
            md_document_ids,
            ops.full((ops.shape(md_token_ids)[0],), length, dtype="int32"),
        )
        rows = ops.cast(batch_size, "float32")
        terms = {
            "ar_rows": rows,
            "md_rows": rows,
            "ar_share": self.ar_fraction,
            "md_share": 1.0 - self.ar_fraction,
            "ar_loss": ar_loss(token_ids, causal_logits, document_ids, self.pad_token_id),
            "ar_accuracy": token_accuracy(causal_logits, token_ids, ar_targets),
            "md_loss": md_loss(
                md_token_ids,
                md_logits,
                corruption["masked_positions"],
                corruption["mask_fraction"],
                corruption["maskable_positions"],
                shifted=self.md_shifted,
            ),
            "md_accuracy": token_accuracy(
                md_logits,
                md_token_ids,
                corruption["masked_positions"],
                shifted=self.md_shifted,
            ),
        }
        if self.z_loss_tracker is not None:
            terms["z_loss"] = self.ar_fraction * z_loss(causal_logits, ar_targets) + (
                1.0 - self.ar_fraction
            ) * z_loss(md_logits, corruption["masked_positions"], self.md_shifted)
        return terms

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        # A training forward (a dict) has only the objectives α gives rows to; their
        # metrics would read 0 otherwise. Evaluation always reports both.
        if isinstance(y_pred, dict):
            absent = ()
            if self.ar_fraction == 0.0:
                absent = ("ar_loss", "ar_accuracy")
            elif self.ar_fraction == 1.0:
                absent = ("md_loss", "md_accuracy")
            logs = {name: value for name, value in logs.items() if name not in absent}
        return logs

    # --- Keras plumbing -------------------------------------------------------

    def compile(self, optimizer="auto", loss=None, metrics=None, **kwargs):
        """Configures training. `optimizer="auto"` is AdamW(1e-3, weight decay 0.01).

        The objective is fixed by the model (see the class docstring): `loss` and
        `metrics` are not accepted.
        """
        if loss is not None or metrics is not None:
            raise ValueError(
                "`DualLM` computes its own dual objective and metrics; compile() takes "
                f"no `loss` or `metrics`; received loss={loss!r}, metrics={metrics!r}."
            )
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips models with a custom compile(); ours accepts its own config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        check_array_inputs(x, self.backbone.vocabulary_size, self.backbone.max_sequence_length, y)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        check_array_inputs(x, self.backbone.vocabulary_size, self.backbone.max_sequence_length)
        # The same masks on every call make held-out MD estimates comparable.
        self.elbo_seed_generator.state.assign(
            np.array([self.elbo_seed, 0], dtype=self.elbo_seed_generator.state.dtype)
        )
        return super().evaluate(x, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "tokenizer": (
                    None
                    if self.tokenizer is None
                    else keras.saving.serialize_keras_object(self.tokenizer)
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
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("tokenizer") is not None:
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)

    # ==========================================================================
    # Generation and scoring. The work is done by `keras_dualobj.generation` and
    # `keras_dualobj.evaluation`, which take this model's call functions
    # (`call_with_cache`, `_build_cache`, `logits`, `score`) as keras-hub samplers
    # take `next`.
    # ==========================================================================

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Causal forward pass of new tokens against a KV cache (AR decoding).

        Args:
            token_ids: int `[batch, n]`, the tokens at positions
                `cache_update_index .. cache_update_index + n - 1`.
            cache: float `[batch, num_layers, 2, max_length, num_heads, head_dim]`.
            cache_update_index: int or scalar int tensor.

        Returns:
            `(logits [batch, n, vocab], hidden_states [batch, n, hidden], cache)`.

        Example:
        >>> import numpy as np
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> _, cache = model._build_cache(np.array([[1, 20, 21, 3]], "int32"))
        >>> logits, _, cache = model.call_with_cache(np.array([[22]], "int32"), cache, 3)
        >>> tuple(logits.shape)
        (1, 1, 64)
        """
        batch_size, query_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        max_length = ops.shape(cache)[3]
        query_positions = cache_update_index + ops.arange(query_length, dtype="int32")
        key_positions = ops.arange(max_length, dtype="int32")
        # Keys beyond a query's position are stale or padding: causal over the cache.
        attention_mask = key_positions[None, None, :] <= query_positions[None, :, None]
        attention_mask = ops.broadcast_to(
            attention_mask, (batch_size, query_length, max_length)
        )
        hidden_states = self.backbone.token_embedding(token_ids)
        caches = []
        for i, block in enumerate(self.backbone.transformer_layers):
            hidden_states, layer_cache = block(
                hidden_states,
                attention_mask=attention_mask,
                cache=cache[:, i, ...],
                cache_update_index=cache_update_index,
            )
            caches.append(layer_cache)
        hidden_states = self.backbone.final_norm(hidden_states)
        logits = self.backbone.token_embedding(hidden_states, reverse=True)
        return logits, hidden_states, ops.stack(caches, axis=1)

    def _build_cache(self, token_ids):
        """An empty cache for `token_ids` `[batch, max_length]`, seeded by one causal pass."""
        backbone = self.backbone
        shape = (
            ops.shape(token_ids)[0],
            backbone.num_layers,
            2,
            ops.shape(token_ids)[1],
            backbone.num_heads,
            backbone.head_dim,
        )
        cache = ops.zeros(shape, dtype=backbone.compute_dtype)
        _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
        return hidden_states, cache

    def generate(
        self,
        prompts,
        mode="ar",
        max_new_tokens=32,
        *,
        stop_token_ids="auto",
        strip_prompt=False,
        temperature=None,
        seed=None,
        sampler=None,
        use_cache=None,
        num_steps=None,
        block_length=None,
        remasking=None,
    ):
        """Continues prompts, autoregressively (`mode="ar"`) or by masked diffusion (`"md"`).

        `"ar"`: left to right with a KV cache, the next token chosen by a keras-hub
        sampler. `"md"`: the `max_new_tokens` positions after each prompt start as
        `<mask>` and are revealed over `num_steps` bidirectional passes (see
        `md_decode`). Prompts of different lengths share one batch; each gets up to
        `max_new_tokens` new tokens. The generating function is compiled once per
        batch shape and option set and reused by later calls.

        Args:
            prompts: a string or list of strings (needs `model.tokenizer`; `<s>` is
                prepended), or token ids: a list of ints, a list of id lists or an
                int array (start them with `<s>`, id `bos_token_id`).
            mode: `"ar"` or `"md"`.
            max_new_tokens: int >= 1. The longest prompt plus this must fit in
                `backbone.max_sequence_length`.
            stop_token_ids: `"auto"` (`eos_token_id`), `None`, or a tuple of ids. A
                row ends after its first stop token (kept in the output).
            strip_prompt: return only the new tokens.
            temperature: `"ar"`: float > 0 for a named sampler (default 1.0);
                `"md"`: float >= 0 (default 0, argmax).
            seed: int; makes sampling and random remasking reproducible.
            sampler: `"ar"` only. `"greedy"` (default), `"top_k"`, `"top_p"`,
                `"random"`, or a `keras_hub.samplers.Sampler` instance.
            use_cache: `"ar"` only. `False` recomputes the full causal pass for
                every token (the benchmark's baseline). Defaults to `True`.
            num_steps: `"md"` only. Forward passes; defaults to `max_new_tokens`.
            block_length: `"md"` only. Semi-autoregressive block length, dividing
                `max_new_tokens`; defaults to one block.
            remasking: `"md"` only. `"confidence"` (default) or `"random"`.

        Returns:
            The prompts' structure: a string, a list of strings, a 1-D int32 array
            or a list of them, each the prompt followed by its continuation.

        Example:
        >>> import numpy as np
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> prompts = [[1, 20, 21], [1, 30]]
        >>> [len(row) for row in model.generate(prompts, max_new_tokens=4,
        ...                                     stop_token_ids=None)]
        [7, 6]
        >>> model.generate([1, 20, 21], mode="md", max_new_tokens=4, num_steps=2,
        ...                stop_token_ids=None).shape
        (7,)
        """
        check_choice("mode", mode, GENERATION_MODES)
        check_int("max_new_tokens", max_new_tokens, minimum=1)
        mode_options = {
            "ar": {"sampler": sampler, "use_cache": use_cache},
            "md": {
                "num_steps": num_steps,
                "block_length": block_length,
                "remasking": remasking,
            },
        }
        for other_mode, options in mode_options.items():
            given = sorted(name for name, value in options.items() if value is not None)
            if other_mode != mode and given:
                raise ValueError(
                    f"{given} only apply to mode={other_mode!r}; received them with "
                    f"mode={mode!r}."
                )
        # Options first, so that a typo is reported before any length problem.
        if mode == "ar":
            check_sampler_options("greedy" if sampler is None else sampler, temperature, seed)
        else:
            check_md_options("confidence" if remasking is None else remasking, temperature or 0.0)
            reveal_schedule(
                max_new_tokens, max_new_tokens if num_steps is None else num_steps, block_length
            )
        stop_token_ids = self._resolve_stop_token_ids(stop_token_ids)
        rows, structure = encode_prompts(prompts, self.tokenizer, self.bos_token_id)
        check_vocabulary(rows, self.backbone.vocabulary_size)
        prompt_lengths = np.array([len(row) for row in rows])
        length = int(prompt_lengths.max()) + max_new_tokens
        self._check_sequence_length(
            length,
            f"the longest prompt ({int(prompt_lengths.max())} tokens) + max_new_tokens "
            f"({max_new_tokens})",
        )
        token_ids = pad_rows(rows, length, self.pad_token_id)
        positions = np.arange(length)[None, :]
        if mode == "ar":
            token_ids = self._generate_ar(
                token_ids,
                positions < prompt_lengths[:, None],
                sampler="greedy" if sampler is None else sampler,
                temperature=temperature,
                seed=seed,
                stop_token_ids=stop_token_ids,
                use_cache=True if use_cache is None else use_cache,
            )
        else:
            ends = prompt_lengths[:, None] + max_new_tokens
            fill_positions = (positions >= prompt_lengths[:, None]) & (positions < ends)
            token_ids = self._md_fill(
                np.where(fill_positions, self.mask_token_id, token_ids),
                document_ids=(positions >= ends).astype("int32"),
                fill_positions=fill_positions,
                num_steps=max_new_tokens if num_steps is None else num_steps,
                block_length=block_length,
                remasking="confidence" if remasking is None else remasking,
                temperature=0.0 if temperature is None else temperature,
                seed=seed,
            )["token_ids"]
        outputs = []
        for row, prompt_length in zip(token_ids, prompt_lengths):
            row = row[: prompt_length + max_new_tokens]
            row = truncate_at_stop(row, prompt_length, stop_token_ids)
            outputs.append(row[prompt_length:] if strip_prompt else row)
        return decode_outputs(outputs, structure, self.tokenizer, self.special_token_ids)

    def infill(
        self,
        prefix,
        suffix,
        span_length,
        *,
        num_steps=None,
        block_length=None,
        remasking="confidence",
        temperature=0.0,
        seed=None,
    ):
        """Fills `span_length` tokens between a prefix and a suffix by MD decoding.

        The span starts as `<mask>`s and is revealed as in `md_decode`, attending to
        both sides; prefix and suffix are returned unchanged.

        Args:
            prefix: a string (`<s>` is prepended) or token ids (start with `<s>`), or
                a list of them.
            suffix: the same kind as `prefix` (strings are tokenized without `<s>`),
                and as many.
            span_length: int >= 1, tokens to fill.
            num_steps, block_length, remasking, temperature, seed: as in `md_decode`;
                `num_steps` defaults to `span_length`.

        Returns:
            `prefix + span + suffix` in the structure of `prefix`.

        Example:
        >>> import numpy as np
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> filled = model.infill([1, 20, 21], [40, 41], span_length=3)
        >>> filled[:3].tolist(), filled[-2:].tolist(), len(filled)
        ([1, 20, 21], [40, 41], 8)
        """
        check_int("span_length", span_length, minimum=1)
        prefixes, structure = encode_prompts(
            prefix, self.tokenizer, self.bos_token_id, name="prefix"
        )
        suffixes, suffix_structure = encode_prompts(
            suffix, self.tokenizer, None, name="suffix"
        )
        if structure != suffix_structure or len(prefixes) != len(suffixes):
            raise ValueError(
                "`prefix` and `suffix` must be of the same kind and count; received a "
                f"{structure} of {len(prefixes)} and a {suffix_structure} of "
                f"{len(suffixes)}."
            )
        check_vocabulary(prefixes, self.backbone.vocabulary_size, "prefix")
        check_vocabulary(suffixes, self.backbone.vocabulary_size, "suffix")
        rows = [
            np.concatenate([p, np.full((span_length,), self.mask_token_id, "int32"), s])
            for p, s in zip(prefixes, suffixes)
        ]
        lengths = np.array([len(row) for row in rows])
        length = int(lengths.max())
        self._check_sequence_length(length, "prefix + span_length + suffix")
        token_ids = pad_rows(rows, length, self.pad_token_id)
        positions = np.arange(length)[None, :]
        starts = np.array([len(p) for p in prefixes])[:, None]
        fill_positions = (positions >= starts) & (positions < starts + span_length)
        token_ids = self._md_fill(
            token_ids,
            document_ids=(positions >= lengths[:, None]).astype("int32"),
            fill_positions=fill_positions,
            num_steps=span_length if num_steps is None else num_steps,
            block_length=block_length,
            remasking=remasking,
            temperature=temperature,
            seed=seed,
        )["token_ids"]
        outputs = [row[:row_length] for row, row_length in zip(token_ids, lengths)]
        return decode_outputs(outputs, structure, self.tokenizer, self.special_token_ids)

    def md_decode(
        self,
        token_ids,
        document_ids=None,
        *,
        num_steps=None,
        block_length=None,
        remasking="confidence",
        temperature=0.0,
        seed=None,
    ):
        """Fills every `<mask>` of a batch of token ids by masked-diffusion decoding.

        Each step runs one bidirectional pass, proposes a token for every position
        (argmax, or sampled at `temperature > 0`; never `<mask>`) and reveals a fixed
        number of the still-masked positions of the current block: those whose
        proposal is most probable (`remasking="confidence"`) or random ones
        (`"random"`). Blocks of `block_length` masked positions (in reading order)
        are completed one after another. With the shifted convention (the model's
        default) the token at `j` is read from the logits at `j - 1`, so position 0
        cannot be masked.

        Args:
            token_ids: int `[batch, length]`; every row holds the same number of
                `<mask>` tokens.
            document_ids: optional int `[batch, length]`; give padding its own id.
            num_steps: int in `[1, masks per row]`, a multiple of the number of
                blocks. Defaults to one step per mask.
            block_length: int dividing the masks per row; defaults to one block.
            remasking: `"confidence"` or `"random"`.
            temperature: float >= 0; 0 is argmax.
            seed: optional int, for sampling and random remasking.

        Returns:
            dict of NumPy int32 `[batch, length]`: `token_ids` (no `<mask>` left) and
            `reveal_step`, the step at which each position was revealed (-1 for
            positions that were not masked).

        Example:
        >>> import numpy as np
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> result = model.md_decode(np.array([[1, 20, 4, 4, 4, 4]]), block_length=2)
        >>> result["reveal_step"][0, 2:].tolist() in ([0, 1, 2, 3], [1, 0, 2, 3],
        ...     [0, 1, 3, 2], [1, 0, 3, 2])
        True
        """
        token_ids = np.asarray(ops.convert_to_numpy(token_ids))
        if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
            raise ValueError(
                "`token_ids` must be an int array [batch, length]; received dtype "
                f"{token_ids.dtype} and shape {token_ids.shape}."
            )
        check_vocabulary(list(token_ids), self.backbone.vocabulary_size, "token_ids")
        if document_ids is None:
            document_ids = np.zeros_like(token_ids)
        fill_positions = token_ids == self.mask_token_id
        return self._md_fill(
            token_ids,
            document_ids=np.asarray(ops.convert_to_numpy(document_ids)),
            fill_positions=fill_positions,
            num_steps=num_steps,
            block_length=block_length,
            remasking=remasking,
            temperature=temperature,
            seed=seed,
        )

    def score(
        self,
        token_ids,
        mode="ar",
        *,
        target_mask=None,
        prefix_lengths=None,
        document_ids=None,
        num_samples=None,
        seed=None,
    ):
        """Negative log-likelihood of chosen tokens per row, in one of three modes.

        - `"ar"`: causal attention; exact `-log p`.
        - `"prefix"`: bidirectional over the first `prefix_lengths[b]` tokens of
          row b, causal after; exact `-log p` of targets after the prefix (the
          paper's prefix-LM evaluation, no extra training).
        - `"md"`: the masked-diffusion upper bound (ELBO) on `-log p`, estimated
          with `num_samples` stratified masks per row from `seed` (see
          `keras_dualobj.evaluation.md_elbo` for the estimator).

        Args:
            token_ids: int `[batch, length]`.
            mode: `"ar"`, `"prefix"` or `"md"`.
            target_mask: bool `[batch, length]`, the positions scored. Defaults to
                every position after the first (and after the prefix) whose token
                is not special (`<s>`, `</s>`, `<pad>`, `<mask>`) and whose left
                neighbour is in the same document.
            prefix_lengths: int `[batch]`; required by, and only for, `"prefix"`.
            document_ids: optional int `[batch, length]`.
            num_samples: `"md"` only; int >= 1, defaults to 16.
            seed: `"md"` only; int (or sequence of ints), defaults to 0.

        Returns:
            dict of NumPy `[batch]` arrays: `nll` (nats), `standard_error` (0 when
            exact) and `num_tokens`; perplexity is `exp(nll.sum() / num_tokens.sum())`.

        Example:
        >>> import numpy as np
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> token_ids = np.array([[1, 20, 21, 22, 23]])
        >>> model.score(token_ids)["num_tokens"].tolist()
        [4]
        >>> model.score(token_ids, "prefix", prefix_lengths=[3])["num_tokens"].tolist()
        [2]
        >>> result = model.score(token_ids, "md", num_samples=4, seed=0)
        >>> bool(result["standard_error"][0] >= 0)
        True
        """
        check_choice("mode", mode, SCORING_MODES)
        if mode != "md" and (num_samples is not None or seed is not None):
            raise ValueError(
                "`num_samples` and `seed` only apply to mode='md'; received "
                f"num_samples={num_samples!r}, seed={seed!r} with mode={mode!r}."
            )
        if (mode == "prefix") != (prefix_lengths is not None):
            raise ValueError(
                "Pass `prefix_lengths` exactly when mode='prefix'; received "
                f"mode={mode!r} with prefix_lengths={prefix_lengths!r}."
            )
        token_ids, _, document_ids = check_scoring_inputs(
            token_ids, np.zeros(np.shape(token_ids), bool), document_ids
        )
        check_vocabulary(list(token_ids), self.backbone.vocabulary_size, "token_ids")
        self._check_sequence_length(token_ids.shape[1], "`token_ids`")
        if target_mask is None:
            target_mask = ops.convert_to_numpy(
                next_token_targets(token_ids, document_ids, self.special_token_ids)
            )
            if mode == "prefix":
                prefix = np.asarray(prefix_lengths).reshape(-1, 1)
                target_mask = target_mask & (np.arange(token_ids.shape[1]) >= prefix)
        logits_fn = self._scoring_logits_function()
        if mode == "md":
            return md_nll_bound(
                logits_fn,
                token_ids,
                target_mask,
                self.mask_token_id,
                num_samples=16 if num_samples is None else num_samples,
                seed=0 if seed is None else seed,
                shifted=self.md_shifted,
                document_ids=document_ids,
            )
        return sequence_nll(logits_fn, token_ids, target_mask, prefix_lengths, document_ids)

    def evaluate_multiple_choice(
        self,
        examples,
        modes=("ar",),
        *,
        length_normalization=None,
        num_samples=None,
        seed=None,
        batch_size=32,
    ):
        """Zero-shot multiple-choice accuracy in each scoring mode.

        Args:
            examples: path of a JSON Lines file or a list of dicts with `context`,
                `choices` and `label` (format in
                `keras_dualobj.evaluation.multiple_choice`).
            modes: any of `"ar"`, `"prefix"`, `"md"`.
            length_normalization: `None`, `"tokens"` or `"bytes"`.
            num_samples, seed: for `"md"`, as in `score` (masks also depend on the
                batch index).
            batch_size: choices scored per forward pass.

        Returns:
            dict with `num_examples`, `labels`, `length_normalization` and, per mode,
            `accuracy`, `predictions`, `scores` and `standard_errors`.

        Example:
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> examples = [{"context": [1, 20], "choices": [[21], [22]], "label": 0}]
        >>> result = model.evaluate_multiple_choice(examples, modes=("ar", "md"))
        >>> sorted(result["modes"]), result["num_examples"]
        (['ar', 'md'], 1)
        """

        if num_samples is not None:
            check_int("num_samples", num_samples, minimum=1)
        if seed is not None:
            check_int("seed", seed, minimum=0)

        def score_fn(token_ids, mode, batch_index, **kwargs):
            if mode == "md":
                kwargs.update(num_samples=num_samples, seed=[base_seed, batch_index])
            return self.score(token_ids, mode, **kwargs)

        base_seed = 0 if seed is None else seed
        return evaluate_multiple_choice(
            score_fn,
            examples,
            modes=modes,
            length_normalization=length_normalization,
            tokenize=None if self.tokenizer is None else self.tokenizer.tokenize,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
            batch_size=batch_size,
        )

    def _scoring_logits_function(self):
        """`self.logits`, compiled once per shape: JAX's and TF's eager modes dispatch
        (and on JAX compile) op by op, which dominates scoring many small batches."""

        def build():
            def logits(inputs):
                return self.logits(
                    inputs["token_ids"], inputs["document_ids"], inputs["prefix_lengths"]
                )

            return compile_decoding_function(logits, self)

        compiled = self._decoding_function(("logits",), build)

        def logits_fn(token_ids, document_ids, prefix_lengths):
            inputs = {
                "token_ids": token_ids,
                "document_ids": document_ids,
                "prefix_lengths": prefix_lengths,
            }
            return compiled(inputs)

        return logits_fn

    def _decoding_function(self, key, build):
        if getattr(self, "_decoding_functions", None) is None:
            self._decoding_functions = DecodingFunctionCache()
        return self._decoding_functions.get(key, build)

    def _generate_ar(
        self, token_ids, prompt_mask, sampler, temperature, seed, stop_token_ids, use_cache
    ):
        if not isinstance(use_cache, bool):
            raise ValueError(f"`use_cache` must be True or False; received {use_cache!r}.")
        if isinstance(sampler, str):
            # The seed is not part of the key: it is written into the sampler's state
            # below, so every seed shares one compiled function.
            sampler_key = ("named", sampler, temperature)
        else:
            sampler_key = ("instance", id(sampler))

        def build():
            sampler_object = get_sampler(sampler, temperature)
            if use_cache:
                def step(inputs):
                    return ar_decode(
                        self.call_with_cache,
                        self._build_cache,
                        inputs,
                        sampler_object,
                        stop_token_ids,
                        model=self,
                    )
            else:
                def step(inputs):
                    return ar_decode_uncached(
                        self.logits, inputs, sampler_object, stop_token_ids, model=self
                    )
            function = compile_decoding_function(step, self, sampler_object.variables)
            # Kept with the function so that `id(sampler)` cannot be reused.
            return sampler_object, function

        key = ("ar", use_cache, sampler_key, stop_token_ids)
        sampler_object, function = self._decoding_function(key, build)
        if seed is not None:
            # The state `SeedGenerator(seed)` starts from: the same tokens on every call.
            for variable in sampler_object.variables:
                variable.assign(np.array([seed, 0], dtype=variable.dtype))
        inputs = {"token_ids": token_ids, "prompt_mask": prompt_mask}
        return ops.convert_to_numpy(function(inputs))

    def _md_fill(
        self,
        token_ids,
        document_ids,
        fill_positions,
        num_steps,
        block_length,
        remasking,
        temperature,
        seed,
    ):
        temperature = check_md_options(remasking, temperature)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        batch_size, length = token_ids.shape
        self._check_sequence_length(length, "the sequence to decode")
        if document_ids.shape != token_ids.shape:
            raise ValueError(
                f"`document_ids` must have the shape of `token_ids` {token_ids.shape}; "
                f"received {document_ids.shape}."
            )
        counts = fill_positions.sum(axis=1)
        if counts.min() != counts.max() or counts.max() == 0:
            raise ValueError(
                "Every row must hold the same, non-zero number of positions to fill "
                f"(`<mask>`, id {self.mask_token_id}); received {counts.tolist()}."
            )
        if self.md_shifted and fill_positions[:, 0].any():
            raise ValueError(
                "Position 0 cannot be decoded: with the shifted MD convention the token "
                "at j is predicted from position j - 1. Start every row with `<s>`."
            )
        num_new_tokens = int(counts[0])
        num_steps = num_new_tokens if num_steps is None else num_steps
        block_length = num_new_tokens if block_length is None else block_length
        schedule = reveal_schedule(num_new_tokens, num_steps, block_length)

        def build():
            seed_generator = keras.random.SeedGenerator(seed)

            def step(inputs):
                return md_decode_step(
                    self.logits,
                    inputs,
                    self.mask_token_id,
                    seed_generator,
                    remasking=remasking,
                    temperature=temperature,
                    shifted=self.md_shifted,
                )

            return seed_generator, compile_decoding_function(
                step, self, [seed_generator.state]
            )

        key = ("md", remasking, temperature)
        seed_generator, function = self._decoding_function(key, build)
        if seed is not None:
            seed_generator.state.assign(
                np.array([seed, 0], dtype=seed_generator.state.dtype)
            )
        token_ids, reveal_step = md_decode(
            function, token_ids, document_ids, fill_positions, schedule, block_length
        )
        return {"token_ids": token_ids, "reveal_step": reveal_step}

    def _resolve_stop_token_ids(self, stop_token_ids):
        if stop_token_ids is None:
            return None
        if isinstance(stop_token_ids, str):
            check_choice("stop_token_ids", stop_token_ids, ("auto",))
            return (self.eos_token_id,)
        try:
            stop_token_ids = tuple(stop_token_ids)
        except TypeError:
            stop_token_ids = (stop_token_ids,)
        for token_id in stop_token_ids:
            check_int("stop_token_ids", token_id, minimum=0)
        if self.pad_token_id in stop_token_ids:
            # Rows are padded with it before decoding: every row would look finished.
            raise ValueError(
                f"`stop_token_ids` must not contain the padding id {self.pad_token_id}; "
                f"received stop_token_ids={stop_token_ids}."
            )
        return tuple(int(token_id) for token_id in stop_token_ids) or None

    def _check_sequence_length(self, length, what):
        limit = self.backbone.max_sequence_length
        if length > limit:
            raise ValueError(
                f"{what} is {length} tokens, beyond the backbone's max_sequence_length "
                f"of {limit}."
            )

    # === Presets (keras_dualobj.models.presets) ===

    @classmethod
    def from_preset(cls, preset, tokenizer=None, **kwargs):
        """A `DualLM` on a `DualBackbone.from_preset(preset)` backbone.

        Keyword arguments that `DualBackbone` takes (e.g. `vocabulary_size`,
        `dropout`, `max_sequence_length`) go to the backbone, the rest (e.g.
        `ar_fraction`, `seed`) to `DualLM`. With a `tokenizer` and no
        `vocabulary_size`, the vocabulary is the tokenizer's.

        Example:
        >>> model = DualLM.from_preset("tiny", ar_fraction=0.25, vocabulary_size=300)
        >>> model.ar_fraction, model.backbone.vocabulary_size
        (0.25, 300)
        """
        import inspect

        backbone_arguments = set(inspect.signature(DualBackbone.__init__).parameters)
        backbone_kwargs = {k: v for k, v in kwargs.items() if k in backbone_arguments}
        task_kwargs = {k: v for k, v in kwargs.items() if k not in backbone_arguments}
        if tokenizer is not None and "vocabulary_size" not in backbone_kwargs:
            backbone_kwargs["vocabulary_size"] = int(tokenizer.vocabulary_size())
        backbone = DualBackbone.from_preset(preset, **backbone_kwargs)
        return cls(backbone, tokenizer=tokenizer, **task_kwargs)


def _unpack_features(inputs):
    """`{"token_ids", "document_ids"[, "prefix_lengths"]}` from ids or a dict."""
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"token_ids", "document_ids", "prefix_lengths"}
        if "token_ids" not in inputs or unknown:
            raise ValueError(
                "DualLM inputs must be token ids or a dict with `token_ids` and optional "
                f"`document_ids` / `prefix_lengths`; received keys {sorted(inputs)}."
            )
        features = dict(inputs)
    else:
        features = {"token_ids": inputs}
    token_ids = ops.convert_to_tensor(features["token_ids"])
    if len(token_ids.shape) != 2:
        raise ValueError(
            "`token_ids` must have shape [batch, length]; received shape "
            f"{tuple(token_ids.shape)}."
        )
    if "int" not in str(token_ids.dtype):
        raise TypeError(f"`token_ids` must be integers; received dtype {token_ids.dtype}.")
    features["token_ids"] = ops.cast(token_ids, "int32")
    document_ids = features.get("document_ids")
    if document_ids is None:
        features["document_ids"] = ops.zeros_like(features["token_ids"])
    else:
        features["document_ids"] = ops.cast(document_ids, "int32")
    return features


def _resolve_special_token_ids(tokenizer, **explicit):
    resolved = {}
    for name, default in DEFAULT_SPECIAL_TOKEN_IDS.items():
        value = explicit.get(name)
        if value is None and tokenizer is not None:
            value = getattr(tokenizer, name, None)
        resolved[name] = default if value is None else value
    return resolved
