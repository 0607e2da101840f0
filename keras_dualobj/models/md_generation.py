"""Infilling with the MD face: a span between a prefix and a suffix, revealed by an `MDDecoder`."""

import numpy as np

from keras_dualobj.decoders import MDDecoder
from keras_dualobj.decoders import get as get_decoder
from keras_dualobj.generation.prompts import check_sequence_length
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import decode_outputs
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.utils.validation import check_int


class MDGeneration:
    """Mixin: infilling of `DualLM` by masked-diffusion decoding."""

    def infill(self, prefix, suffix, span_length, *, decoder=None):
        """Fills `span_length` tokens between a prefix and a suffix by MD decoding.

        The span starts as `<mask>`s and is revealed by `decoder.fill`, attending to
        both sides; prefix and suffix are returned unchanged.

        Args:
            prefix: a string (`<s>` is prepended) or token ids (start with `<s>`), or
                a list of them.
            suffix: the same kind as `prefix` (strings are tokenized without `<s>`),
                and as many.
            span_length: int >= 1, tokens to fill.
            decoder: an `MDDecoder` (or `"md"`); defaults to `MDDecoder()`.

        Returns:
            `prefix + span + suffix` in the structure of `prefix`.

        Example:
        >>> from keras_dualobj.decoders import MDDecoder
        >>> from keras_dualobj.models import DualBackbone, DualLM
        >>> backbone = DualBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
        ...                         hidden_dim=32, intermediate_dim=64)
        >>> model = DualLM(backbone)
        >>> filled = model.infill([1, 20, 21], [40, 41], span_length=3,
        ...                       decoder=MDDecoder(temperature=0.0))
        >>> filled[:3].tolist(), filled[-2:].tolist(), len(filled)
        ([1, 20, 21], [40, 41], 8)
        """
        check_int("span_length", span_length, minimum=1)
        decoder = MDDecoder() if decoder is None else get_decoder(decoder)
        if not isinstance(decoder, MDDecoder) or decoder.prefix_cache:
            raise ValueError(
                "Infilling reveals the span with the MD face over the whole sequence: "
                f"`decoder` must be an MDDecoder with prefix_cache=False; received {decoder!r}."
            )
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
        document_ids = (positions >= lengths[:, None]).astype("int32")
        token_ids = decoder.fill(self, token_ids, document_ids, fill_positions)["token_ids"]
        outputs = [row[:row_length] for row, row_length in zip(token_ids, lengths)]
        return decode_outputs(outputs, structure, self.tokenizer, self.special_token_ids)
