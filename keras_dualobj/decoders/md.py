"""`MDDecoder`: the masked-diffusion face, revealing `<mask>` positions over bidirectional passes."""

import functools

import keras
import numpy as np
from keras import ops

from keras_dualobj.decoders.base import Decoder
from keras_dualobj.evaluation.likelihood import check_scoring_inputs
from keras_dualobj.generation.md_block_cache import empty_cache
from keras_dualobj.generation.md_block_cache import md_block_cache_decode
from keras_dualobj.generation.md_block_cache import md_block_step
from keras_dualobj.generation.md_decoding import check_md_options
from keras_dualobj.generation.md_decoding import md_decode
from keras_dualobj.generation.md_decoding import md_decode_step
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.md_likelihood import md_likelihood
from keras_dualobj.generation.md_likelihood import md_likelihood_step
from keras_dualobj.generation.md_threshold_decoding import md_threshold_decode
from keras_dualobj.generation.md_threshold_decoding import md_threshold_step
from keras_dualobj.generation.prompts import check_sequence_length
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int


def shortest_block_length(num_new_tokens, num_steps):
    """The default MD `block_length`: the shortest blocks that `num_steps` can share evenly.

    The least `b` dividing `num_new_tokens` whose `num_new_tokens / b` blocks divide
    `num_steps`: with one step per new token (the default), blocks of one token, decoded
    left to right; with fewer steps, one step per block when the steps divide the new
    tokens; a single block when nothing shorter fits.

    Example:
    >>> [shortest_block_length(64, steps) for steps in (64, 16, 12, 1)]
    [1, 4, 16, 64]
    >>> shortest_block_length(5, 2)
    5
    """
    check_int("num_new_tokens", num_new_tokens, minimum=1)
    check_int("num_steps", num_steps, minimum=1)
    # One block (b = num_new_tokens) always fits: the search ends there at the latest.
    return next(
        block_length
        for block_length in range(1, num_new_tokens + 1)
        if num_new_tokens % block_length == 0
        and num_steps % (num_new_tokens // block_length) == 0
    )


@keras.saving.register_keras_serializable(package="keras_dualobj")
class MDDecoder(Decoder):
    """Masked-diffusion decoding: the new positions start as `<mask>` and are revealed.

    Each step runs one bidirectional pass, proposes a token for every position
    (argmax, or sampled at `temperature > 0`; never `<mask>`) and reveals some of the
    still-masked positions of the current block: the most probable proposals
    (`remasking="confidence"`) or random ones (`"random"`). Blocks of `block_length`
    positions are completed one after another (semi-autoregressive decoding). With
    the shifted convention (the model's default) the token at `j` is read from the
    logits at `j - 1`.

    The defaults were measured (`benchmarks/generation_defaults.py`): decoding in one
    block fills the canvas with spaces, the most probable byte far from any context;
    the shortest blocks the steps allow (one token per step by default, left to
    right), sampled at temperature 0.5, wrote the most readable text.

    Args:
        num_steps: int >= 1, forward passes, at most one per new token and a multiple
            of the number of blocks. Defaults to one per new token.
        block_length: int dividing the new tokens. Defaults to the shortest blocks
            the steps share evenly (`shortest_block_length`); one block with a
            `threshold`. `block_length` = the new tokens reveals in any order.
        remasking: `"confidence"` or `"random"`.
        temperature: float >= 0; 0 is argmax.
        threshold: optional τ in `[0, 1]`: each step reveals every masked position of
            the block whose proposal has probability above τ (at least one;
            Fast-dLLM's parallel unmasking). Exclusive with `num_steps`; needs
            `remasking="confidence"`.
        prefix_cache: `True`: the prompt and finished blocks are encoded once per
            block into a KV cache, under a block-causal mask (they do not see what
            follows: faster, approximate; see `keras_dualobj.generation.md_block_cache`).
        seed: optional int >= 0.

    Example:
    >>> import numpy as np
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> model.generate([1, 20, 21], max_new_tokens=4, stop_token_ids=None,
    ...                decoder=MDDecoder(num_steps=2)).shape
    (7,)
    >>> filled = MDDecoder(block_length=2).fill(model, np.array([[1, 20, 4, 4, 4, 4]]))
    >>> sorted(filled["reveal_step"][0].tolist())
    [-1, -1, 0, 1, 2, 3]
    """

    def __init__(self, num_steps=None, block_length=None, remasking="confidence",
                 temperature=0.5, threshold=None, prefix_cache=False, seed=None):
        super().__init__(seed)
        if num_steps is not None:
            check_int("num_steps", num_steps, minimum=1)
        if block_length is not None:
            check_int("block_length", block_length, minimum=1)
        self.temperature = check_md_options(remasking, temperature)
        if threshold is not None:
            threshold = check_float("threshold", threshold, minimum=0.0, maximum=1.0)
            if num_steps is not None:
                raise ValueError(
                    "`num_steps` and `threshold` are exclusive (a threshold decides the "
                    f"steps); received num_steps={num_steps}, threshold={threshold}."
                )
            if remasking != "confidence":
                raise ValueError(
                    "`threshold` reveals by confidence; received remasking="
                    f"{remasking!r} (use the default, 'confidence')."
                )
        if not isinstance(prefix_cache, bool):
            raise TypeError(f"`prefix_cache` must be True or False; received {prefix_cache!r}.")
        self.num_steps = num_steps
        self.block_length = block_length
        self.remasking = remasking
        self.threshold = threshold
        self.prefix_cache = prefix_cache

    def get_config(self):
        return {
            **super().get_config(),
            "num_steps": self.num_steps,
            "block_length": self.block_length,
            "remasking": self.remasking,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "prefix_cache": self.prefix_cache,
        }

    def plan(self, num_new_tokens):
        """`(block_length, schedule)` for `num_new_tokens` positions to fill.

        `schedule` is the `reveal_schedule` (`(block, count)` per step), or `None`
        with a threshold (it decides the steps). Raises when the options do not fit.

        Example:
        >>> MDDecoder(num_steps=4).plan(8)
        (2, [(0, 2), (1, 2), (2, 2), (3, 2)])
        """
        num_steps = num_new_tokens if self.num_steps is None else self.num_steps
        block_length = self.block_length
        if block_length is None:
            if self.threshold is not None:
                block_length = num_new_tokens
            else:
                reveal_schedule(num_new_tokens, num_steps)  # checks num_steps first
                block_length = shortest_block_length(num_new_tokens, num_steps)
        if self.threshold is not None:
            reveal_schedule(num_new_tokens, num_new_tokens, block_length)  # checks block_length
            return block_length, None
        return block_length, reveal_schedule(num_new_tokens, num_steps, block_length)

    def generate_rows(self, model, rows, max_length, max_new_tokens, stop_token_ids):
        prompt_lengths = np.array([len(row) for row in rows])
        longest = int(prompt_lengths.max())
        num_new_tokens = max_new_tokens if max_length is None else max_length - longest
        if num_new_tokens < 1:
            raise ValueError(
                f"max_length={max_length} leaves no room after the longest prompt "
                f"({longest} tokens)."
            )
        self.plan(num_new_tokens)  # option errors before length errors
        length = longest + num_new_tokens
        check_sequence_length(
            model.backbone, length, f"the longest prompt ({longest} tokens) + {num_new_tokens} new tokens"
        )
        positions = np.arange(length)[None, :]
        ends = prompt_lengths[:, None] + num_new_tokens
        fill_positions = (positions >= prompt_lengths[:, None]) & (positions < ends)
        canvas = np.where(fill_positions, model.mask_token_id, pad_rows(rows, length, model.pad_token_id))
        if self.prefix_cache:
            token_ids = self.fill_blocks(model, canvas, prompt_lengths)["token_ids"]
        else:
            document_ids = (positions >= ends).astype("int32")
            token_ids = self.fill(model, canvas, document_ids, fill_positions)["token_ids"]
        return [row[:end] for row, end in zip(token_ids, ends[:, 0])]

    def fill(self, model, token_ids, document_ids=None, fill_positions=None):
        """Reveals the `<mask>` positions of a batch of token ids (full bidirectional passes).

        Args:
            model: a `DualLM`.
            token_ids: int `[batch, length]`; every row holds the same number of
                positions to fill.
            document_ids: optional int `[batch, length]`; give padding its own id.
            fill_positions: optional bool `[batch, length]`; defaults to the `<mask>`s.

        Returns:
            dict of NumPy int32: `token_ids` `[batch, length]` (filled), `reveal_step`
            (the step at which each position was revealed, -1 elsewhere) and
            `num_steps` (forward passes taken).
        """
        if self.prefix_cache:
            raise ValueError(
                "MDDecoder(prefix_cache=True) decodes a canvas of prompts followed by "
                "masks (`generate`, `fill_blocks`); `fill` takes prefix_cache=False."
            )
        token_ids = np.asarray(ops.convert_to_numpy(token_ids))
        if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
            raise ValueError(
                "`token_ids` must be an int array [batch, length]; received dtype "
                f"{token_ids.dtype} and shape {token_ids.shape}."
            )
        check_vocabulary(list(token_ids), model.backbone.vocabulary_size, "token_ids")
        if fill_positions is None:
            fill_positions = token_ids == model.mask_token_id
        document_ids = np.zeros_like(token_ids) if document_ids is None else document_ids
        document_ids = np.asarray(ops.convert_to_numpy(document_ids))
        num_new_tokens = _check_canvas(model, token_ids, document_ids, fill_positions)
        block_length, schedule = self.plan(num_new_tokens)
        if self.threshold is not None:
            function = self.compiled(model, lambda: self._step(model, md_threshold_step), "fill")
            tokens, reveal_step, num_steps = md_threshold_decode(
                function, token_ids, document_ids, fill_positions, block_length, self.threshold
            )
        else:
            function = self.compiled(model, lambda: self._step(model, md_decode_step), "fill")
            tokens, reveal_step = md_decode(
                function, token_ids, document_ids, fill_positions, schedule, block_length
            )
            num_steps = len(schedule)
        return {"token_ids": tokens, "reveal_step": reveal_step, "num_steps": num_steps}

    def _step(self, model, step_function):
        seed_generator = self.seed_generator()
        options = {"temperature": self.temperature, "shifted": model.md_shifted}
        if step_function is md_decode_step:
            options["remasking"] = self.remasking

        def step(inputs):
            return step_function(model.logits, inputs, model.mask_token_id, seed_generator,
                                 **options)

        return step, [seed_generator.state]

    def fill_blocks(self, model, token_ids, prompt_lengths, use_cache=True):
        """Block-causal decoding of prompts followed by `<mask>`s, with the prefix KV cache.

        What `generate` runs with `prefix_cache=True`.

        Args:
            model: a `DualLM`.
            token_ids: int32 `[B, L]`: prompts, the same number of `<mask>`s after
                each, then padding.
            prompt_lengths: int `[B]`, every >= 1.
            use_cache: `False` runs a full block-causal pass at every step (the
                uncached reference the cache must reproduce).

        Returns:
            dict: NumPy int32 `token_ids` and `reveal_step` `[B, L]`; the counts
            `num_full_passes` and `num_window_passes`.
        """
        token_ids = np.asarray(token_ids, "int32")
        prompt_lengths = np.asarray(prompt_lengths, "int32").reshape(-1)
        if prompt_lengths.shape != (token_ids.shape[0],) or prompt_lengths.min() < 1:
            raise ValueError(
                f"`prompt_lengths` must hold one length >= 1 per row ({token_ids.shape[0]}); "
                f"received {prompt_lengths.tolist()}."
            )
        num_new_tokens = _check_canvas(
            model, token_ids, np.zeros_like(token_ids), token_ids == model.mask_token_id
        )
        starts = (token_ids == model.mask_token_id).argmax(axis=1)
        if (starts != prompt_lengths).any():
            raise ValueError(
                f"The `<mask>`s must start right after each prompt ({prompt_lengths.tolist()}); "
                f"they start at {starts.tolist()}."
            )
        block_length, schedule = self.plan(num_new_tokens)
        counts = None if schedule is None else [count for block, count in schedule if block == 0]
        options = (self.temperature, self.remasking, model.md_shifted)

        def build():
            seed_generator = self.seed_generator()

            def step(inputs):
                return md_block_step(model.call_with_cache, inputs, model.mask_token_id,
                                     seed_generator, options)

            return step, [seed_generator.state]

        function = self.compiled(model, build, "blocks")
        cache = empty_cache(model.backbone, token_ids.shape[0], token_ids.shape[1])
        plan = (num_new_tokens, block_length, counts, self.threshold)
        tokens, reveal_step, full, window = md_block_cache_decode(
            function, token_ids, prompt_lengths, cache, plan, model.md_shifted, use_cache
        )
        return {"token_ids": tokens, "reveal_step": reveal_step,
                "num_full_passes": full, "num_window_passes": window}


    def score_rows(self, model, token_ids, target_mask=None, document_ids=None):
        """The exact NLL of `target_mask`'s tokens along this decoder's order (DUEL).

        The targets start as `<mask>` and are revealed as this decoder reveals them
        at temperature 0 (the most probable proposals first, block by block, or
        above its `threshold`); each step adds the model's log-probability of the
        true tokens it reveals (`<mask>` excluded from the distribution). That is
        the probability that the decoder, drawing each revealed token from the model,
        writes exactly these targets: an exact likelihood, one forward pass per step
        (`keras_dualobj.generation.md_likelihood`). Rows are grouped by their number
        of targets (every row of a group shares the schedule).

        Args:
            model: a `DualLM`.
            token_ids: int `[batch, length]`.
            target_mask: optional bool `[batch, length]`; defaults to `score`'s.
            document_ids: optional int `[batch, length]`.

        Returns:
            dict of NumPy `[batch]`: `nll` (nats), `num_tokens`, `standard_error` (0).

        Example:
        >>> import numpy as np
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
        ...                             hidden_dim=16, intermediate_dim=32))
        >>> scores = MDDecoder(temperature=0.0).score_rows(model, np.array([[1, 20, 21, 22]]))
        >>> scores["num_tokens"].tolist(), bool(scores["nll"][0] > 0)
        ([3], True)
        """
        if self.remasking != "confidence" or self.prefix_cache:
            raise ValueError(
                "An exact likelihood needs a decoder whose order the canvas fixes, over "
                "full bidirectional passes: remasking='confidence' and prefix_cache=False; "
                f"received {self!r}."
            )
        default_mask = target_mask is None
        token_ids, target_mask, document_ids = check_scoring_inputs(
            token_ids, np.zeros(np.shape(token_ids), bool) if default_mask else target_mask,
            document_ids,
        )
        token_ids = token_ids.astype("int32")
        check_vocabulary(list(token_ids), model.backbone.vocabulary_size, "token_ids")
        if default_mask:
            target_mask = ops.convert_to_numpy(
                next_token_targets(token_ids, document_ids, model.special_token_ids)
            )
        counts = target_mask.sum(axis=1)
        nll = np.zeros(len(token_ids))
        for count in np.unique(counts[counts > 0]):
            rows = np.flatnonzero(counts == count)
            block_length, schedule = self.plan(int(count))
            block_counts = None
            if schedule is not None:
                block_counts = [steps for block, steps in schedule if block == 0]
            function = self.compiled(
                model,
                lambda: (functools.partial(md_likelihood_step, model.logits,
                                           mask_token_id=model.mask_token_id,
                                           shifted=model.md_shifted), []),
                "likelihood",
            )
            _check_canvas(model, token_ids[rows], document_ids[rows], target_mask[rows])
            nll[rows] = -md_likelihood(
                function, token_ids[rows], document_ids[rows], target_mask[rows], block_length,
                block_counts, self.threshold, model.mask_token_id,
            )
        return {"nll": nll, "num_tokens": counts, "standard_error": np.zeros(len(token_ids))}


def _check_canvas(model, token_ids, document_ids, fill_positions):
    """Checks a canvas to fill; returns the number of positions to fill per row."""
    check_sequence_length(model.backbone, token_ids.shape[1], "the sequence to decode")
    if document_ids.shape != token_ids.shape:
        raise ValueError(
            f"`document_ids` must have the shape of `token_ids` {token_ids.shape}; "
            f"received {document_ids.shape}."
        )
    counts = np.asarray(fill_positions).sum(axis=1)
    if counts.min() != counts.max() or counts.max() == 0:
        raise ValueError(
            "Every row must hold the same, non-zero number of positions to fill "
            f"(`<mask>`, id {model.mask_token_id}); received {counts.tolist()}."
        )
    if model.md_shifted and np.asarray(fill_positions)[:, 0].any():
        raise ValueError(
            "Position 0 cannot be decoded: with the shifted MD convention the token "
            "at j is predicted from position j - 1. Start every row with `<s>`."
        )
    return int(counts[0])
