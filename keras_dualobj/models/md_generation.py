"""MD generation: filling `<mask>` positions by masked-diffusion decoding, and infilling.

Every entry point (`DualLM.generate(..., mode="md")`, `infill`, `md_decode`) ends in
`_md_fill`, which checks the canvas and runs `keras_dualobj.generation.md_decoding`
with one compiled bidirectional step per option set.
"""

import keras
import numpy as np
from keras import ops

from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.md_block_cache import block_cache_md_generate
from keras_dualobj.generation.md_decoding import md_decode
from keras_dualobj.generation.md_decoding import md_decode_step
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.md_threshold_decoding import threshold_md_generate
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import decode_outputs
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.models.generation_options import resolve_md_options
from keras_dualobj.models.task_inputs import check_sequence_length
from keras_dualobj.utils.validation import check_int


class MDGeneration:
    """Mixin: masked-diffusion decoding and infilling of `DualLM`."""

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
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> filled = model.infill([1, 20, 21], [40, 41], span_length=3)
        >>> filled[:3].tolist(), filled[-2:].tolist(), len(filled)
        ([1, 20, 21], [40, 41], 8)
        """
        check_int("span_length", span_length, minimum=1)
        options = resolve_md_options(num_steps, block_length, remasking, temperature, seed)
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
        check_sequence_length(self.backbone, length, "prefix + span_length + suffix")
        token_ids = pad_rows(rows, length, self.pad_token_id)
        positions = np.arange(length)[None, :]
        starts = np.array([len(p) for p in prefixes])[:, None]
        fill_positions = (positions >= starts) & (positions < starts + span_length)
        token_ids = self._md_fill(
            token_ids,
            (positions >= lengths[:, None]).astype("int32"),
            fill_positions,
            options,
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
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> result = model.md_decode(np.array([[1, 20, 4, 4, 4, 4]]), block_length=2)
        >>> result["reveal_step"][0, 2:].tolist() in ([0, 1, 2, 3], [1, 0, 2, 3],
        ...     [0, 1, 3, 2], [1, 0, 3, 2])
        True
        """
        options = resolve_md_options(num_steps, block_length, remasking, temperature, seed)
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
        document_ids = np.asarray(ops.convert_to_numpy(document_ids))
        return self._md_fill(token_ids, document_ids, fill_positions, options)

    def _generate_md_rows(self, rows, options):
        """`generate(mode="md")` on prompt rows: a canvas of `<mask>`s after each prompt."""
        prompt_lengths = np.array([len(row) for row in rows])
        num_new_tokens = options.new_tokens(int(prompt_lengths.max()))
        if num_new_tokens < 1:
            raise ValueError(
                f"max_length={options.max_length} leaves no room after the longest "
                f"prompt ({int(prompt_lengths.max())} tokens)."
            )
        options = options.for_new_tokens(num_new_tokens)
        length = int(prompt_lengths.max()) + num_new_tokens
        check_sequence_length(
            self.backbone,
            length,
            f"the longest prompt ({int(prompt_lengths.max())} tokens) + "
            f"{num_new_tokens} new tokens",
        )
        token_ids = pad_rows(rows, length, self.pad_token_id)
        positions = np.arange(length)[None, :]
        ends = prompt_lengths[:, None] + num_new_tokens
        fill_positions = (positions >= prompt_lengths[:, None]) & (positions < ends)
        canvas = np.where(fill_positions, self.mask_token_id, token_ids)
        document_ids = (positions >= ends).astype("int32")
        if options.threshold is not None and options.remasking != "confidence":
            raise ValueError(
                "`threshold` reveals by confidence; received remasking="
                f"{options.remasking!r} (use the default, 'confidence')."
            )
        if options.prefix_cache:
            token_ids, _, _ = block_cache_md_generate(
                self, canvas, prompt_lengths, num_new_tokens,
                block_length=options.block_length, num_steps=options.num_steps,
                threshold=options.threshold, remasking=options.remasking,
                temperature=options.temperature, seed=options.seed,
            )
        elif options.threshold is not None:
            token_ids, _, _ = threshold_md_generate(
                self, canvas, document_ids, fill_positions, options.threshold,
                block_length=options.block_length, temperature=options.temperature,
                seed=options.seed,
            )
        else:
            token_ids = self._md_fill(canvas, document_ids, fill_positions, options)["token_ids"]
        return [row[: end] for row, end in zip(token_ids, ends[:, 0])]

    def _md_fill(self, token_ids, document_ids, fill_positions, options):
        """Reveals `fill_positions` of `token_ids` (NumPy); `options` are resolved."""
        batch_size, length = token_ids.shape
        check_sequence_length(self.backbone, length, "the sequence to decode")
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
        schedule = options.schedule
        if schedule is None:
            num_steps = num_new_tokens if options.num_steps is None else options.num_steps
            schedule = reveal_schedule(num_new_tokens, num_steps, options.block_length)
        # Validated by `reveal_schedule` (which also defaults it to one block).
        block_length = options.block_length or num_new_tokens
        remasking, temperature = options.remasking, options.temperature

        def build():
            seed_generator = keras.random.SeedGenerator(options.seed)

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
        if options.seed is not None:
            seed_generator.state.assign(
                np.array([options.seed, 0], dtype=seed_generator.state.dtype)
            )
        token_ids, reveal_step = md_decode(
            function, token_ids, document_ids, fill_positions, list(schedule), block_length
        )
        return {"token_ids": token_ids, "reveal_step": reveal_step}
