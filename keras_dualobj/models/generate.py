"""`DualLM.generate`: inputs in (strings, token ids, keras-hub dicts, `tf.data`), completions out.

Like keras-hub's `CausalLM.generate`, it takes strings (through `model.preprocessor`),
a dict `{"token_ids", "padding_mask"}` of right-padded prompts (returned in the same
form), or a `tf.data.Dataset` of either (batches generated one after another, the
outputs concatenated); it also takes plain token ids (a list of ints, a list of id
lists, an int array), returned as 1-D arrays. The decoding method is an object
(`keras_dualobj.decoders`): the prompts go to its `generate_rows`.
"""

import numpy as np

from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import get as get_decoder
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import decode_outputs
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import truncate_at_stop
from keras_dualobj.models.generation_options import resolve_lengths
from keras_dualobj.models.generation_options import resolve_stop_token_ids


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
        max_new_tokens=None,
        decoder=None,
    ):
        """Continues prompts with a decoding method: AR, masked diffusion, or speculative.

        keras-hub's `CausalLM.generate`, with the decoding method an object
        (`keras_dualobj.decoders`), as keras-hub's sampler is: `ARDecoder` (left to
        right with a KV cache, a keras-hub sampler picking each token), `MDDecoder`
        (the new positions start as `<mask>` and are revealed over bidirectional
        passes) or `SpeculativeDecoder` (the MD face drafts, the AR face verifies:
        the AR face's output, several tokens per pass). Prompts of different lengths
        share one batch. The generating function is compiled once per batch shape
        and decoder options and reused by later calls.

        The default decoders sample at temperature 0.5 (measured to read best, see
        `ARDecoder` and `MDDecoder`): give them a `seed` for reproducible output, or
        use `ARDecoder("greedy")` / `MDDecoder(temperature=0)` for argmax decoding.

        Args:
            inputs: a string or list of strings (through `model.preprocessor`: `<s>`
                is prepended); a dict `{"token_ids", "padding_mask"}` of right-padded
                prompts (keras-hub's form); token ids (a list of ints, a list of id
                lists or an int array; start them with `<s>`); or a `tf.data.Dataset`
                of batches of any of these.
            max_length: int, keras-hub's: total tokens per row. Left-to-right
                decoders continue every row up to it; `MDDecoder` gives every row
                `max_length - longest prompt` new tokens. Exclusive with
                `max_new_tokens`.
            stop_token_ids: `"auto"` (`eos_token_id`), `None`, or ids. A row ends
                after its first stop token (kept in the output).
            strip_prompt: return only the new tokens.
            max_new_tokens: int >= 1, new tokens per row; defaults to 32 when
                `max_length` is not given.
            decoder: a `Decoder`, a name for `keras_dualobj.decoders.get` (`"ar"`,
                `"md"`, `"speculative"`, or a keras-hub sampler name), or `None` for
                the one given to `compile(decoder=...)`, else `ARDecoder()`.

        Returns:
            The structure of `inputs`: a string or list of strings; a dict of padded
            `token_ids` and `padding_mask`; a 1-D int32 array or a list of them. A
            dataset gives the concatenation over its batches.

        Example:
        >>> import numpy as np
        >>> from keras_dualobj.decoders import MDDecoder, SpeculativeDecoder
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
        >>> model.generate([1, 20, 21], max_new_tokens=4, stop_token_ids=None,
        ...                decoder=MDDecoder(num_steps=2)).shape
        (7,)
        >>> fast = MDDecoder(block_length=2, threshold=0.9, prefix_cache=True)
        >>> model.generate(prompts, max_new_tokens=4, decoder=fast,
        ...                stop_token_ids=None)[1].shape
        (6,)
        >>> ar = model.generate(prompts, max_new_tokens=6, stop_token_ids=None,
        ...                     decoder="greedy")
        >>> speculative = model.generate(prompts, max_new_tokens=6, stop_token_ids=None,
        ...                              decoder=SpeculativeDecoder(draft_length=3))
        >>> all((a == s).all() for a, s in zip(ar, speculative))
        True
        """
        max_length, max_new_tokens = resolve_lengths(max_length, max_new_tokens)
        if not isinstance(strip_prompt, bool):
            raise TypeError(f"`strip_prompt` must be True or False; received {strip_prompt!r}.")
        stop_token_ids = resolve_stop_token_ids(
            stop_token_ids, self.eos_token_id, self.pad_token_id
        )
        if decoder is not None:
            decoder = get_decoder(decoder)
        else:
            decoder = getattr(self, "decoder", None) or ARDecoder()
        options = (decoder, max_length, max_new_tokens, stop_token_ids, strip_prompt)
        if _is_dataset(inputs):
            outputs = [self._generate_batch(batch, *options) for batch in inputs.as_numpy_iterator()]
            if not outputs:
                raise ValueError("`inputs` is an empty dataset: nothing to generate from.")
            return _concatenate(outputs, self.pad_token_id)
        return self._generate_batch(inputs, *options)

    def _generate_batch(self, inputs, decoder, max_length, max_new_tokens, stop_token_ids,
                        strip_prompt):
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
        outputs = decoder.generate_rows(self, rows, max_length, max_new_tokens, stop_token_ids)
        finished = []
        for row, prompt in zip(outputs, rows):
            row = truncate_at_stop(row, len(prompt), stop_token_ids)
            finished.append(row[len(prompt) :] if strip_prompt else row)
        if structure != "dict":
            return decode_outputs(finished, structure)
        outputs = _dict_from_rows(finished, self.pad_token_id)
        if text:
            strings = preprocessor.generate_postprocess(outputs)
            return strings[0] if single else strings
        return outputs
