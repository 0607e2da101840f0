"""Scoring: per-row log-likelihoods in the AR, prefix-LM and MD modes, and multiple choice.

The estimators live in `keras_dualobj.evaluation` and take the model's `logits`
function (compiled once per shape here), as keras-hub samplers take `next`.
"""

import numpy as np
from keras import ops

from keras_dualobj.evaluation.likelihood import check_scoring_inputs
from keras_dualobj.evaluation.likelihood import sequence_nll
from keras_dualobj.evaluation.md_bound import MAX_HASHED_LENGTH
from keras_dualobj.evaluation.md_bound import md_bound_values
from keras_dualobj.evaluation.md_bound import summarize_bound
from keras_dualobj.evaluation.multiple_choice import SCORING_MODES
from keras_dualobj.evaluation.multiple_choice import evaluate_multiple_choice
from keras_dualobj.evaluation.pseudo_likelihood import pseudo_log_likelihood
from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import check_sequence_length
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int


class Scoring:
    """Mixin: `score` and `evaluate_multiple_choice` of `DualLM`."""

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
        mask_following=None,
    ):
        """Negative log-likelihood of chosen tokens per row, in one of four modes.

        - `"ar"`: causal attention; exact `-log p`.
        - `"prefix"`: bidirectional over the first `prefix_lengths[b]` tokens of
          row b, causal after; exact `-log p` of targets after the prefix (the
          paper's prefix-LM evaluation, no extra training).
        - `"md"`: the masked-diffusion upper bound (ELBO) on `-log p`, estimated
          with `num_samples` stratified masks per row from `seed`, all in one
          forward pass of `num_samples × batch` rows (the estimator of
          `keras_dualobj.evaluation.md_bound`, also used by `evaluate()`; a row's
          masks depend on its content and `seed` only, not on its batch).
        - `"pll"`: minus the exact pseudo-log-likelihood of the masked-diffusion
          face (one target masked at a time; `keras_dualobj.evaluation.
          pseudo_likelihood`): deterministic, a score rather than a bound. With
          `mask_following=True`, each target is scored with every later target
          masked too (the multi-token, left-to-right variant).

        Args:
            token_ids: int `[batch, length]`.
            mode: `"ar"`, `"prefix"`, `"md"` or `"pll"`.
            target_mask: bool `[batch, length]`, the positions scored. Defaults to
                every position after the first (and after the prefix) whose token
                is not special (`<s>`, `</s>`, `<pad>`, `<mask>`) and whose left
                neighbour is in the same document.
            prefix_lengths: int `[batch]`; required by, and only for, `"prefix"`.
            document_ids: optional int `[batch, length]`.
            num_samples: `"md"` only; int >= 1, defaults to 16.
            seed: `"md"` only; int in `[0, 2^31)`, defaults to 0.
            mask_following: `"pll"` only; bool, defaults to False.

        Returns:
            dict of NumPy `[batch]` arrays: `nll` (nats), `standard_error` (0 when
            exact), `num_tokens` and `greedy` (every target is the argmax of its
            prediction: causal / prefix-LM; masked alone for `"pll"`; all targets
            masked at once for `"md"`); perplexity is
            `exp(nll.sum() / num_tokens.sum())`.

        Example:
        >>> import numpy as np
        >>> from keras_dualobj.models import DualBackbone, DualLM
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
        if mode != "pll" and mask_following is not None:
            raise ValueError(
                "`mask_following` only applies to mode='pll'; received "
                f"mask_following={mask_following!r} with mode={mode!r}."
            )
        if mask_following not in (None, True, False):
            raise TypeError(
                f"`mask_following` must be a bool; received mask_following={mask_following!r}."
            )
        if (mode == "prefix") != (prefix_lengths is not None):
            raise ValueError(
                "Pass `prefix_lengths` exactly when mode='prefix'; received "
                f"mode={mode!r} with prefix_lengths={prefix_lengths!r}."
            )
        default_mask = target_mask is None
        token_ids, target_mask, document_ids = check_scoring_inputs(
            token_ids,
            np.zeros(np.shape(token_ids), bool) if default_mask else target_mask,
            document_ids,
        )
        check_vocabulary(list(token_ids), self.backbone.vocabulary_size, "token_ids")
        check_sequence_length(self.backbone, token_ids.shape[1], "`token_ids`")
        if default_mask:
            target_mask = ops.convert_to_numpy(
                next_token_targets(token_ids, document_ids, self.special_token_ids)
            )
            if mode == "prefix":
                prefix = np.asarray(prefix_lengths).reshape(-1, 1)
                target_mask = target_mask & (np.arange(token_ids.shape[1]) >= prefix)
        if mode == "md":
            return self._md_bound_scores(
                token_ids,
                target_mask,
                document_ids,
                16 if num_samples is None else num_samples,
                0 if seed is None else seed,
            )
        logits_fn = self._scoring_logits_function()
        if mode == "pll":
            return pseudo_log_likelihood(
                logits_fn,
                token_ids,
                target_mask,
                self.mask_token_id,
                shifted=self.md_shifted,
                document_ids=document_ids,
                checked=True,
                mask_following=bool(mask_following),
            )
        return sequence_nll(
            logits_fn, token_ids, target_mask, prefix_lengths, document_ids, checked=True
        )

    def _md_bound_scores(self, token_ids, target_mask, document_ids, num_samples, seed):
        check_int("num_samples", num_samples, minimum=1)
        check_int("seed", seed, minimum=0)
        if seed >= 2**31:
            raise ValueError(f"`seed` must be below 2^31; received seed={seed}.")
        if token_ids.shape[1] > MAX_HASHED_LENGTH:
            raise ValueError(
                f"mode='md' scores rows of at most {MAX_HASHED_LENGTH} tokens; received "
                f"length {token_ids.shape[1]}."
            )

        def build():
            def md_values(inputs):
                token_ids, target_mask = inputs["token_ids"], inputs["target_mask"]
                values = md_bound_values(
                    self.logits,
                    token_ids,
                    target_mask,
                    self.mask_token_id,
                    num_samples,
                    inputs["seed"],
                    shifted=self.md_shifted,
                    document_ids=inputs["document_ids"],
                )
                # `greedy`: every target is its argmax with all targets masked at once.
                all_masked = ops.where(target_mask, self.mask_token_id, token_ids)
                length = ops.shape(token_ids)[1]
                prefix = ops.full((ops.shape(token_ids)[0],), length, dtype="int32")
                logits = self.logits(all_masked, inputs["document_ids"], prefix)
                return values, ops.argmax(logits, axis=-1)

            return compile_decoding_function(md_values, self)

        compiled = self._decoding_function(("md_bound", num_samples), build)
        values, predicted = compiled(
            {
                "token_ids": ops.convert_to_tensor(token_ids, "int32"),
                "target_mask": ops.convert_to_tensor(target_mask, "bool"),
                "document_ids": ops.convert_to_tensor(document_ids, "int32"),
                "seed": ops.convert_to_tensor(seed, "int32"),
            }
        )
        result = summarize_bound(values)
        result["num_tokens"] = target_mask.sum(axis=1)
        predicted = ops.convert_to_numpy(predicted)
        if self.md_shifted:
            hits = np.pad(predicted[:, :-1] == token_ids[:, 1:], ((0, 0), (1, 0)))
        else:
            hits = predicted == token_ids
        result["greedy"] = np.all(hits | ~target_mask, axis=1)
        return result

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
            modes: any of `"ar"`, `"prefix"`, `"md"`, `"pll"`.
            length_normalization: `None`, `"tokens"` or `"bytes"`.
            num_samples, seed: for `"md"`, as in `score` (a choice's masks depend on
                its tokens and `seed` only, so `batch_size` does not change scores).
            batch_size: choices scored per forward pass.

        Returns:
            dict with `num_examples`, `labels`, `length_normalization` and, per mode,
            `accuracy`, `predictions`, `scores` and `standard_errors`.

        Example:
        >>> from keras_dualobj.models import DualBackbone, DualLM
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
                kwargs.update(num_samples=num_samples, seed=base_seed)
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
