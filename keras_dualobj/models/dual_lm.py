"""`DualLM`: one language model trained on autoregressive + masked-diffusion objectives."""

import keras
import numpy as np
from keras import ops

from keras_dualobj.models.dual_backbone import DualBackbone
from keras_dualobj.objectives.losses import ar_loss
from keras_dualobj.objectives.losses import md_loss
from keras_dualobj.objectives.losses import token_accuracy
from keras_dualobj.objectives.losses import z_loss
from keras_dualobj.objectives.masking import maskable_positions
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.objectives.masking import sample_ar_rows
from keras_dualobj.objectives.masking import sample_masked_positions
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

ATTENTION_MODES = ("causal", "bidirectional", "prefix")
MD_VARIANTS = ("shifted", "unshifted")
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
    a Monte-Carlo estimate of the MD bound (ELBO) with `elbo_samples` independent
    masks per row drawn from `elbo_seed`, reset at every `evaluate()` call so
    repeated evaluations are identical.

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
        hidden_states = self.backbone(
            {
                "token_ids": token_ids,
                "document_ids": document_ids,
                "prefix_lengths": ops.cast(prefix_lengths, "int32"),
            }
        )
        return self.backbone.token_embedding(hidden_states, reverse=True)

    def corrupt(self, token_ids, document_ids, seed):
        """Masks every row for the MD objective.

        Returns a dict with `input_ids` (masked positions replaced by `<mask>`),
        `masked_positions`, `maskable_positions` and `mask_fraction` (see
        `keras_dualobj.objectives.sample_masked_positions`).
        """
        maskable = maskable_positions(
            token_ids, document_ids, self.special_token_ids, shifted=self.md_shifted
        )
        masked, mask_fraction = sample_masked_positions(maskable, seed)
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
        corruption = self.corrupt(md_token_ids, md_document_ids, self.elbo_seed_generator)
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

    def evaluate(self, *args, **kwargs):
        # The same masks on every call make held-out MD estimates comparable.
        self.elbo_seed_generator.state.assign(
            np.array([self.elbo_seed, 0], dtype=self.elbo_seed_generator.state.dtype)
        )
        return super().evaluate(*args, **kwargs)

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
