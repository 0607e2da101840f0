"""`DualLM.generate`: inputs in (strings, token ids, keras-hub dicts, `tf.data`), completions out.

Like keras-hub's `CausalLM.generate`, it takes strings (through `model.preprocessor`),
a dict `{"token_ids", "padding_mask"}` of right-padded prompts (returned in the same
form), or a `tf.data.Dataset` of either (batches generated one after another, the
outputs concatenated); it also takes plain token ids (a list of ints, a list of id
lists, an int array), returned as 1-D arrays. Options are resolved once
(`generation_options`), then the work goes to AR decoding (`ar_generation`) or MD
decoding (`md_generation`).
"""

import numpy as np

from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import decode_outputs
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import truncate_at_stop
from keras_dualobj.models.generation_options import resolve_generation_options


def _is_dataset(inputs):
    return type(inputs).__module__.startswith("tensorflow") and hasattr(inputs, "element_spec")


def _is_text(inputs):
    if isinstance(inputs, (str, bytes)):
        return True
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in "USO"
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and all(
        isinstance(item, (str, bytes)) for item in inputs
    )


def _rows_from_dict(inputs):
    if "token_ids" not in inputs:
        raise ValueError(
            "A dict input to `generate` must hold `token_ids` (and optionally "
            f"`padding_mask`), as keras-hub's preprocessors make; received keys {sorted(inputs)}."
        )
    token_ids = np.asarray(inputs["token_ids"])
    if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(
            "`token_ids` must be an int array [batch, length]; received dtype "
            f"{token_ids.dtype} and shape {token_ids.shape}."
        )
    mask = inputs.get("padding_mask")
    mask = np.ones(token_ids.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != token_ids.shape:
        raise ValueError(
            f"`padding_mask` must have the shape of `token_ids` {token_ids.shape}; "
            f"received {mask.shape}."
        )
    rows = []
    for index, (row, row_mask) in enumerate(zip(token_ids, mask)):
        length = int(row_mask.sum())
        if length == 0 or not row_mask[:length].all():
            raise ValueError(
                f"`padding_mask` row {index} must be right-padded (True then False) "
                f"with at least one token; received {row_mask.astype(int).tolist()}."
            )
        rows.append(row[:length].astype("int32"))
    return rows


def _dict_from_rows(rows, pad_token_id):
    length = max(len(row) for row in rows)
    token_ids = np.full((len(rows), length), pad_token_id, "int32")
    padding_mask = np.zeros((len(rows), length), bool)
    for index, row in enumerate(rows):
        token_ids[index, : len(row)] = row
        padding_mask[index, : len(row)] = True
    return {"token_ids": token_ids, "padding_mask": padding_mask}


def _concatenate(outputs, pad_token_id):
    if isinstance(outputs[0], dict):
        rows = [
            row[mask]
            for output in outputs
            for row, mask in zip(output["token_ids"], output["padding_mask"])
        ]
        return _dict_from_rows(rows, pad_token_id)
    joined = []
    for output in outputs:
        joined.extend([output] if isinstance(output, str) else list(output))
    return joined


class Generate:
    """Mixin: the `generate` entry point of `DualLM`."""

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        *,
        mode="ar",
        max_new_tokens=None,
        temperature=None,
        seed=None,
        sampler=None,
        use_cache=None,
        num_steps=None,
        block_length=None,
        remasking=None,
        threshold=None,
        prefix_cache=None,
        draft_length=None,
        draft_steps=None,
        draft_mode=None,
    ):
        """Continues prompts, autoregressively (`mode="ar"`) or by masked diffusion (`"md"`).

        `"ar"`: left to right with a KV cache, the next token chosen by a keras-hub
        sampler (the one given to `compile(sampler=...)`, else top-k sampling). `"md"`:
        the new positions after each prompt start as `<mask>` and are revealed over
        `num_steps` bidirectional passes (see `md_decode`), in semi-autoregressive
        blocks. Prompts of different lengths share one batch. `"speculative"`: the MD face drafts `draft_length`
        tokens, one cached AR pass verifies them and keeps the longest agreeing prefix
        plus the AR face's next token, so the output is the AR face's (greedy: token
        for token; `temperature > 0`: the speculative-sampling rule keeps the AR
        distribution), several tokens per AR pass (see
        `keras_dualobj.generation.speculative`). The generating function is compiled
        once per batch shape and option set and reused by later calls.

        The defaults were measured, not assumed (`benchmarks/generation_defaults.py`,
        table in `docs/generation.md`; `keras-dualobj train`'s summary samples use the
        same, from `generation_options.AR_DEFAULTS` / `MD_DEFAULTS`). On models of the
        byte presets trained as `keras-dualobj train` trains them, greedy AR decoding
        loops (`"___()" "___()"`), and MD decoding in one block fills the canvas with
        spaces, the most probable byte far from any context, at any temperature. Top-k
        sampling (k = 5), and MD decoding in the shortest blocks the steps allow (by
        default one token per step, left to right), both at temperature 0.5, wrote the
        most readable text: the most letters, in words seen in training, with the fewest
        repeats (on `small`: 0.37 against greedy's 0.23, and 0.33 against 0.01 for MD).
        Both sample: pass `seed` for reproducible output, or `sampler="greedy"` /
        `temperature=0` for argmax decoding.

        Args:
            inputs: a string or list of strings (through `model.preprocessor`: `<s>`
                is prepended); a dict `{"token_ids", "padding_mask"}` of right-padded
                prompts (keras-hub's form); token ids (a list of ints, a list of id
                lists or an int array; start them with `<s>`); or a `tf.data.Dataset`
                of batches of any of these.
            max_length: int, keras-hub's: total tokens per row. AR continues every
                row up to it; MD gives every row `max_length - longest prompt` new
                tokens (MD reveals the same number per row). Exclusive with
                `max_new_tokens`.
            stop_token_ids: `"auto"` (`eos_token_id`), `None`, or ids. A row ends
                after its first stop token (kept in the output).
            strip_prompt: return only the new tokens.
            mode: `"ar"`, `"md"` or `"speculative"`.
            max_new_tokens: int >= 1, new tokens per row; defaults to 32 when
                `max_length` is not given.
            temperature: `"ar"`: float > 0 for a named sampler (0.5 for the default
                sampler, else keras-hub's 1.0); `"md"`: float >= 0 (default 0.5; 0 is
                argmax); `"speculative"`: float >= 0 (default 0, greedy; > 0 samples
                the AR face at that temperature).
            seed: int; makes sampling and random remasking reproducible.
            sampler: `"ar"` only. `"greedy"`, `"top_k"`, `"top_p"`, `"random"`, or a
                `keras_hub.samplers.Sampler`; overrides the compiled one. Defaults to
                the compiled one, else `"top_k"` (k = 5) at temperature 0.5.
            use_cache: `"ar"` only. `False` recomputes the full causal pass for
                every token (the benchmark's baseline). Defaults to `True`.
            num_steps: `"md"` only. Forward passes; defaults to one per new token.
            block_length: `"md"` only. Semi-autoregressive block length, dividing
                the new tokens. Defaults to the shortest blocks the steps share evenly
                (`generation_options.shortest_block_length`): one token per block with
                the default steps, one step per block with fewer; one block with a
                `threshold`. `block_length=max_new_tokens` reveals in any order.
            remasking: `"md"` only. `"confidence"` (default) or `"random"`.
            threshold: `"md"` only. τ in `[0, 1]`: each step reveals every masked
                position of the block whose proposal has probability above τ (at
                least one; Fast-dLLM's parallel unmasking); exclusive with `num_steps`.
            prefix_cache: `"md"` only. `True`: semi-autoregressive blocks with a
                prefix KV cache and a block-causal mask (the prompt and finished
                blocks are encoded once per block and do not see what follows; see
                `keras_dualobj.generation.md_block_cache`). Defaults to `False`.
            draft_length: `"speculative"` only. Tokens drafted per AR pass (default 4).
            draft_steps: `"speculative"` only. MD passes per draft (default 1).
            draft_mode: `"speculative"` only. `"cached"` (default: masks against the AR
                KV cache, cheap), `"full"` (one bidirectional pass, the MD face as
                trained) or `"fused"` (greedy: one pass verifies the draft and drafts
                the next, see `keras_dualobj.generation.speculative_fused`); the
                output does not depend on it, only the acceptance and the speed.

        Returns:
            The structure of `inputs`: a string or list of strings; a dict of padded
            `token_ids` and `padding_mask`; a 1-D int32 array or a list of them. A
            dataset gives the concatenation over its batches.

        Example:
        >>> import numpy as np
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> prompts = [[1, 20, 21], [1, 30]]
        >>> [len(row) for row in model.generate(prompts, max_new_tokens=4,
        ...                                     stop_token_ids=None)]
        [7, 6]
        >>> out = model.generate({"token_ids": np.array([[1, 20, 21], [1, 30, 3]]),
        ...                       "padding_mask": np.array([[1, 1, 1], [1, 1, 0]], bool)},
        ...                      max_length=6, stop_token_ids=None)
        >>> out["token_ids"].shape, out["padding_mask"].sum(axis=1).tolist()
        ((2, 6), [6, 6])
        >>> model.generate([1, 20, 21], mode="md", max_new_tokens=4, num_steps=2,
        ...                stop_token_ids=None).shape
        (7,)
        >>> model.generate(prompts, mode="md", max_new_tokens=4, block_length=2,
        ...                prefix_cache=True, threshold=0.9, stop_token_ids=None)[1].shape
        (6,)
        >>> ar = model.generate(prompts, max_new_tokens=6, stop_token_ids=None,
        ...                     sampler="greedy")
        >>> fast = model.generate(prompts, mode="speculative", max_new_tokens=6,
        ...                       draft_length=3, stop_token_ids=None)
        >>> all((a == f).all() for a, f in zip(ar, fast))
        True
        """
        options = resolve_generation_options(
            mode,
            max_length=max_length,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop_token_ids,
            strip_prompt=strip_prompt,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            default_sampler=getattr(self, "sampler", None),
            temperature=temperature,
            seed=seed,
            sampler=sampler,
            use_cache=use_cache,
            num_steps=num_steps,
            block_length=block_length,
            remasking=remasking,
            threshold=threshold,
            prefix_cache=prefix_cache,
            draft_length=draft_length,
            draft_steps=draft_steps,
            draft_mode=draft_mode,
        )
        if _is_dataset(inputs):
            outputs = [self._generate_batch(batch, options) for batch in inputs.as_numpy_iterator()]
            if not outputs:
                raise ValueError("`inputs` is an empty dataset: nothing to generate from.")
            return _concatenate(outputs, self.pad_token_id)
        return self._generate_batch(inputs, options)

    def _generate_batch(self, inputs, options):
        preprocessor = getattr(self, "preprocessor", None)
        text = _is_text(inputs)
        if text and preprocessor is None:
            raise ValueError(
                "String prompts need a tokenizer and the model has no tokenizer: build it with "
                "`DualLM(backbone, preprocessor=DualLMPreprocessor(tokenizer))` (or "
                "`tokenizer=`), or pass token ids."
            )
        if text:
            single = isinstance(inputs, (str, bytes))
            inputs = preprocessor.generate_preprocess(inputs)
        if isinstance(inputs, dict):
            rows = _rows_from_dict(inputs)
            structure = "dict"
        else:
            rows, structure = encode_prompts(inputs, None, self.bos_token_id)
        check_vocabulary(rows, self.backbone.vocabulary_size)
        if options.mode in ("ar", "speculative"):
            outputs = self._generate_ar_rows(rows, options)
        else:
            outputs = self._generate_md_rows(rows, options)
        finished = []
        for row, prompt in zip(outputs, rows):
            row = truncate_at_stop(row, len(prompt), options.stop_token_ids)
            finished.append(row[len(prompt) :] if options.strip_prompt else row)
        if structure != "dict":
            return decode_outputs(finished, structure)
        outputs = _dict_from_rows(finished, self.pad_token_id)
        if text:
            strings = preprocessor.generate_postprocess(outputs)
            return strings[0] if single else strings
        return outputs
