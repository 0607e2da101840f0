"""The dual objective as a training task: row split, corruption, loss terms, metrics.

`DualObjective` is the part of `DualLM` that `fit()` and `evaluate()` run. In training
mode the model's forward pass (`_dual_training_forward`) draws which rows are AR and
which MD, masks the MD rows, and runs **one** backbone pass with a per-row attention
mask (causal for AR rows, bidirectional for MD rows); `compute_loss` turns that into
`α · ar_loss_weight · L_AR + (1 − α) · L_MD (+ z-loss)` and updates the metrics. In
evaluation both held-out losses are computed for every row whatever α: the exact AR
loss and the MD ELBO by the estimator of `keras_dualobj.evaluation.md_bound` (the one
`DualLM.score(mode="md")` uses), in nats per scored token.

The maths lives in `keras_dualobj.objectives` (pure functions); this mixin wires it to
Keras's `compute_loss` / `compute_metrics`. It expects the host model to provide
`logits`, `special_token_ids`, the `*_token_id`s, `ar_fraction`, `md_variant`,
`ar_loss_weight`, `z_loss_weight`, `elbo_samples`, `elbo_seed`, the seed generators and
the metric trackers (see `DualLM.__init__`).
"""

from keras import ops

from keras_dualobj.evaluation.md_bound import md_bound_forward
from keras_dualobj.models.task_inputs import unpack_features
from keras_dualobj.objectives.losses import ar_target_weights
from keras_dualobj.objectives.losses import md_target_weights
from keras_dualobj.objectives.losses import position_terms
from keras_dualobj.objectives.losses import predicting_positions
from keras_dualobj.objectives.losses import weighted_mean
from keras_dualobj.objectives.masking import maskable_positions
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.objectives.masking import sample_ar_rows
from keras_dualobj.objectives.masking import sample_masked_positions


class DualObjective:
    """Mixin: the dual training objective of `DualLM` (see the module docstring)."""

    @property
    def md_shifted(self):
        """Whether the MD logit at i predicts token i + 1 (the paper's MNTP)."""
        return self.md_variant == "shifted"

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
        # A training step at α = 1 (α = 0) has no MD (AR) rows: that objective's terms
        # and trackers are left out (its logs are dropped by `compute_metrics`), so the
        # step does only the work of the objective it trains.
        objectives = ("ar", "md")
        if training and self.ar_fraction in (0.0, 1.0):
            objectives = ("ar",) if self.ar_fraction == 1.0 else ("md",)
        loss = 0.0
        for objective in objectives:
            weight = self.ar_loss_weight if objective == "ar" else 1.0
            loss = loss + terms[f"{objective}_share"] * weight * terms[f"{objective}_loss"]
            for name in (f"{objective}_loss", f"{objective}_accuracy"):
                getattr(self, f"{name}_tracker").update_state(
                    terms[name], sample_weight=terms["weights"][name]
                )
        if self.z_loss_tracker is not None:
            loss = loss + self.z_loss_weight * terms["z_loss"]
            self.z_loss_tracker.update_state(terms["z_loss"], sample_weight=terms["weights"]["z_loss"])
        return loss

    def _training_terms(self, forward):
        token_ids, document_ids = forward["token_ids"], forward["document_ids"]
        ar_rows = forward["ar_rows"]
        batch_size = ops.cast(ops.shape(token_ids)[0], "float32")
        mixed = 0.0 < self.ar_fraction < 1.0
        # At α = 1 (α = 0) every row is an AR (MD) row: the shares are known statically
        # and the per-row masks would multiply by ones, so neither is computed.
        num_ar_rows = (
            ops.sum(ops.cast(ar_rows, "float32"))
            if mixed
            else batch_size * self.ar_fraction
        )
        terms = {
            # The trackers weigh each step by its rows of each objective.
            "weights": {"ar_loss": num_ar_rows, "ar_accuracy": num_ar_rows, "z_loss": 1.0,
                        "md_loss": batch_size - num_ar_rows,
                        "md_accuracy": batch_size - num_ar_rows},
            "ar_share": num_ar_rows / batch_size if mixed else self.ar_fraction,
            "md_share": 1.0 - num_ar_rows / batch_size if mixed else 1.0 - self.ar_fraction,
        }
        # One pass over the [batch, length, vocabulary] logits serves every term: both
        # objectives' cross-entropies and accuracies and the z-loss are weighted sums of
        # the same per-position values (AR rows and MD rows take different weights).
        md_alignment = "shifted" if self.md_shifted else "unshifted"
        alignments = {"shifted"} if self.ar_fraction > 0.0 else set()
        alignments |= {md_alignment} if self.ar_fraction < 1.0 else set()
        positions = position_terms(forward["logits"], token_ids, tuple(sorted(alignments)))
        z_weights = []
        if self.ar_fraction > 0.0:
            weights = predicting_positions(
                ar_target_weights(
                    token_ids, document_ids, self.pad_token_id, ar_rows if mixed else None
                )
            )
            num_targets = ops.sum(weights)  # one normaliser for the loss and the accuracy
            terms["ar_loss"] = weighted_mean(
                positions["shifted"]["cross_entropy"], weights, num_targets
            )
            terms["ar_accuracy"] = weighted_mean(
                positions["shifted"]["correct"], weights, num_targets
            )
            z_weights.append((terms["ar_share"], weights))
        if self.ar_fraction < 1.0:
            md_rows = ops.logical_not(ar_rows) if mixed else None
            weights, normaliser = md_target_weights(
                token_ids,
                forward["masked_positions"],
                forward["mask_fraction"],
                forward["maskable_positions"],
                shifted=self.md_shifted,
                row_mask=md_rows,
            )
            weights = predicting_positions(weights, self.md_shifted)
            masked = predicting_positions(forward["masked_positions"], self.md_shifted)
            terms["md_loss"] = weighted_mean(
                positions[md_alignment]["cross_entropy"], weights, normaliser
            )
            terms["md_accuracy"] = weighted_mean(positions[md_alignment]["correct"], masked)
            z_weights.append((terms["md_share"], masked))
        if self.z_loss_tracker is not None:
            squared = ops.square(positions["log_normalizer"])
            terms["z_loss"] = sum(
                share * weighted_mean(squared, weights) for share, weights in z_weights
            )
        return terms

    def _evaluation_terms(self, x, causal_logits):
        features = unpack_features(x)
        token_ids, document_ids = features["token_ids"], features["document_ids"]
        ar_targets = next_token_targets(token_ids, document_ids, (self.pad_token_id,))
        # The held-out MD ELBO is the estimator of `DualLM.score(mode="md")`
        # (`keras_dualobj.evaluation.md_bound`): masks from `elbo_seed` and each row's
        # content, so the numbers do not depend on the batch size or the backend.
        md_targets = next_token_targets(token_ids, document_ids, self.special_token_ids)
        md = md_bound_forward(
            self.logits,
            token_ids,
            md_targets,
            self.mask_token_id,
            self.elbo_samples,
            self.elbo_seed,
            shifted=self.md_shifted,
            document_ids=document_ids,
        )
        num_md_tokens = ops.sum(ops.cast(md_targets, "float32"))
        md_logits, md_masked = md["logits"], md["masked"]
        # One pass over each face's logits for its loss, accuracy and z-loss, as in training.
        causal = position_terms(causal_logits, token_ids)
        ar_weights = predicting_positions(ar_targets)
        alignment = "shifted" if self.md_shifted else "unshifted"
        masked = position_terms(md_logits, md["token_ids"], (alignment,))
        md_weights = predicting_positions(md_masked, self.md_shifted)
        num_ar_tokens = ops.sum(ops.cast(ar_weights, "float32"))
        terms = {
            # The trackers weigh each batch by the tokens each value averages, so over a
            # whole `evaluate()` `ar_loss` is Σ NLL / Σ tokens, `md_loss` Σ bound / Σ
            # tokens, `md_accuracy` over all masked tokens, whatever the batch size;
            # padding rows (no targets) count nowhere.
            "weights": {"ar_loss": num_ar_tokens, "ar_accuracy": num_ar_tokens,
                        "md_loss": num_md_tokens, "z_loss": num_ar_tokens,
                        "md_accuracy": ops.sum(ops.cast(md_weights, "float32"))},
            "ar_share": self.ar_fraction,
            "md_share": 1.0 - self.ar_fraction,
            "ar_loss": weighted_mean(causal["shifted"]["cross_entropy"], ar_weights),
            "ar_accuracy": weighted_mean(causal["shifted"]["correct"], ar_weights),
            "md_loss": ops.divide_no_nan(
                ops.sum(ops.mean(md["values"], axis=0)), num_md_tokens
            ),
            "md_accuracy": weighted_mean(masked[alignment]["correct"], md_weights),
        }
        if self.z_loss_tracker is not None:
            terms["z_loss"] = self.ar_fraction * weighted_mean(
                ops.square(causal["log_normalizer"]), ar_weights
            ) + (1.0 - self.ar_fraction) * weighted_mean(
                ops.square(masked["log_normalizer"]), md_weights
            )
        return terms

    def held_out_loss(self, logs):
        """The objective on a whole held-out split, from `evaluate()`'s face losses:
        `α · ar_loss_weight · ar_loss + (1 − α) · md_loss (+ z_loss_weight · z_loss)`.

        Keras's own `loss` tracker averages the batches' objectives by rows; this is
        the same objective, with each face averaged over its scored tokens, so padding
        rows and a smaller last batch change nothing.
        """
        loss = self.ar_fraction * self.ar_loss_weight * logs["ar_loss"]
        loss += (1.0 - self.ar_fraction) * logs["md_loss"]
        if self.z_loss_tracker is not None:
            loss += self.z_loss_weight * logs["z_loss"]
        return loss

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

