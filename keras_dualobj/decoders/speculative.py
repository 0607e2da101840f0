"""`SpeculativeDecoder`: the MD face drafts, the AR face verifies; the output is the AR face's."""

import keras
import numpy as np
from keras import ops

from keras_dualobj.decoders.base import Decoder
from keras_dualobj.generation.speculative import check_speculative_options
from keras_dualobj.generation.speculative import make_loop_runner
from keras_dualobj.generation.speculative import speculative_decode
from keras_dualobj.generation.speculative_fused import fused_speculative_decode


@keras.saving.register_keras_serializable(package="keras_dualobj")
class SpeculativeDecoder(Decoder):
    """Self-speculative decoding: several tokens per AR pass, the AR face's output.

    The MD face drafts `draft_length` tokens, one cached AR pass verifies them and
    keeps the longest agreeing prefix plus the AR face's next token (see
    `keras_dualobj.generation.speculative`). Greedy (`temperature=0`) gives the AR
    face's greedy tokens, token for token; `temperature > 0` keeps the AR face's
    distribution at that temperature (speculative sampling).

    Args:
        draft_length: int >= 1, tokens drafted per AR pass.
        draft_steps: int in `[1, draft_length]`, MD passes per draft.
        draft_mode: `"cached"` (masks against the AR KV cache: cheap; it accepted
            more and cost less than `"full"` in `benchmarks/speculative_decoding.py`),
            `"full"` (one bidirectional pass, the MD face as trained) or `"fused"`
            (greedy: one pass verifies a draft and drafts the next). The output does
            not depend on it, only the acceptance and the speed.
        temperature: float >= 0; 0 is greedy.
        seed: optional int >= 0.

    Example:
    >>> from keras_dualobj.decoders import ARDecoder
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> fast = model.generate([1, 20, 21], max_new_tokens=6, stop_token_ids=None,
    ...                       decoder=SpeculativeDecoder(draft_length=3))
    >>> greedy = model.generate([1, 20, 21], max_new_tokens=6, stop_token_ids=None,
    ...                         decoder=ARDecoder("greedy"))
    >>> fast.tolist() == greedy.tolist()
    True
    """

    def __init__(self, draft_length=4, draft_steps=1, draft_mode="cached", temperature=0.0,
                 seed=None):
        super().__init__(seed)
        self.temperature = check_speculative_options(
            draft_length, draft_steps, temperature, draft_mode
        )
        self.draft_length = draft_length
        self.draft_steps = draft_steps
        self.draft_mode = draft_mode

    def get_config(self):
        return {
            **super().get_config(),
            "draft_length": self.draft_length,
            "draft_steps": self.draft_steps,
            "draft_mode": self.draft_mode,
            "temperature": self.temperature,
        }

    def decode(self, model, token_ids, prompt_mask, stop_token_ids=None):
        """Fills every non-prompt position of right-padded `token_ids`, with statistics.

        Args:
            model: a `DualLM`.
            token_ids: int32 `[B, L]`, prompts right-padded to the final length.
            prompt_mask: bool `[B, L]`, True on prompt tokens (a non-empty run at
                the start of every row).
            stop_token_ids: optional tuple of ids.

        Returns:
            dict: NumPy int32 `token_ids` `[B, L]`; `num_verify_passes`,
            `num_positions`, `tokens_per_verify_pass` (positions decided per AR pass
            over a draft) and `draft_acceptance_rate` (share of the drafted tokens
            the AR face accepted, before the batch-wide minimum).

        Example:
        >>> import numpy as np
        >>> from keras_dualobj import DualBackbone, DualLM
        >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
        ...                             hidden_dim=16, intermediate_dim=32))
        >>> token_ids = np.array([[1, 20, 21, 3, 3, 3, 3, 3]], "int32")
        >>> outputs = SpeculativeDecoder().decode(model, token_ids, token_ids != 3)
        >>> outputs["token_ids"].shape, outputs["num_positions"]
        ((1, 8), 5)
        """
        token_ids = np.asarray(token_ids, "int32")
        prompt_mask = np.asarray(prompt_mask, bool)
        if token_ids.ndim != 2 or prompt_mask.shape != token_ids.shape:
            raise ValueError(
                "`token_ids` must be a 2-D int array and `prompt_mask` a bool array of the "
                f"same shape; received shapes {token_ids.shape} and {prompt_mask.shape}."
            )
        prompt_lengths = prompt_mask.sum(axis=1)
        expected = np.arange(prompt_mask.shape[1])[None, :] < prompt_lengths[:, None]
        if prompt_lengths.min() < 1 or (prompt_mask != expected).any():
            raise ValueError(
                "Every row of `prompt_mask` must be a non-empty run of True at its start "
                f"(a right-padded prompt); received prompt lengths {prompt_lengths.tolist()}."
            )
        stop_token_ids = tuple(int(i) for i in stop_token_ids) if stop_token_ids else None
        function = self.compiled(model, lambda: self._build(model, stop_token_ids), stop_token_ids)
        outputs = function({"token_ids": token_ids, "prompt_mask": prompt_mask})
        outputs = {name: ops.convert_to_numpy(value) for name, value in outputs.items()}
        num_passes = int(outputs["num_verify_passes"])
        num_positions = int(outputs["num_positions"])
        drafted = num_passes * token_ids.shape[0] * self.draft_length
        return {
            "token_ids": outputs["token_ids"].astype("int32"),
            "num_verify_passes": num_passes,
            "num_positions": num_positions,
            "tokens_per_verify_pass": num_positions / max(num_passes, 1),
            "draft_acceptance_rate": int(outputs["num_accepted"]) / max(drafted, 1),
        }

    def _build(self, model, stop_token_ids):
        runner = make_loop_runner()

        def step(inputs):
            if self.draft_mode == "fused":
                return fused_speculative_decode(
                    model.call_with_cache, model._build_cache, inputs, self.draft_length,
                    model.mask_token_id, shifted=model.md_shifted,
                    stop_token_ids=stop_token_ids, loop_runner=runner, model=model,
                )
            return speculative_decode(
                model.call_with_cache, model._build_cache, model.logits, inputs,
                self.draft_length, model.mask_token_id, draft_steps=self.draft_steps,
                temperature=self.temperature, shifted=model.md_shifted,
                stop_token_ids=stop_token_ids, loop_runner=runner, model=model,
                draft_mode=self.draft_mode,
            )

        return step, runner.variables
