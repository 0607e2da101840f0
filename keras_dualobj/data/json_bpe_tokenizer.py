"""A byte-level BPE defined by a Hugging Face `tokenizer.json`, as our tokenizer layer."""

import json
import os
from pathlib import Path

import keras
import numpy as np
from tokenizers import Tokenizer as HFTokenizer

from keras_dualobj.data import special_tokens
from keras_dualobj.data.bpe_tokenizer import BytePairTokenizer

TOKENIZER_JSON_FILENAME = "tokenizer.json"


def _read_json_text(tokenizer_json):
    if isinstance(tokenizer_json, os.PathLike) or (
        isinstance(tokenizer_json, str) and not tokenizer_json.lstrip().startswith("{")
    ):
        path = Path(tokenizer_json)
        if not path.is_file():
            raise FileNotFoundError(f"No tokenizer file at {str(path)!r}.")
        return path.read_text(encoding="utf-8")
    if isinstance(tokenizer_json, str):
        return tokenizer_json
    raise TypeError(
        "`tokenizer_json` must be a path to a tokenizer.json or its JSON text; received "
        f"{type(tokenizer_json).__name__}."
    )


@keras.saving.register_keras_serializable(package="keras_dualobj")
class TokenizerJsonBytePairTokenizer(BytePairTokenizer):
    """Our `BytePairTokenizer` running a Hugging Face `tokenizer.json` exactly.

    The paper's tokenizer (ltgoslo/dual-language-models, `tokenizers/tokenizer.json`)
    adds a normaliser (a leading space, NFC, newline handling), its own split
    regex and a decoder that strips the leading space. This class keeps that whole
    pipeline: `tokenize` gives the ids of `tokenizers.Tokenizer.encode(text,
    add_special_tokens=False)` (no `<s>`: our packing adds it per document) and
    `detokenize` the text of `decode(ids, skip_special_tokens=False)`. The file is
    saved with the model as an asset next to `vocabulary.json` / `merges.txt`.

    Only the five named special tokens must sit at our ids (`<unk>`=0, `<s>`=1,
    `</s>`=2, `<pad>`=3, `<mask>`=4); ids 5-15 may have any special token (the
    reference calls them `<special_0>`...). Tokenization runs eagerly (HF, native
    code); the keras-hub `tf.data` graph path is refused because it cannot run the
    file's normaliser.

    Args:
        tokenizer_json: path to a `tokenizer.json`, or its JSON text.
        **kwargs: passed to `BytePairTokenizer` (not `vocabulary` / `merges`).

    Example:
    >>> from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    >>> hf = Tokenizer(models.BPE(unk_token="<unk>"))
    >>> hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    >>> hf.decoder = decoders.ByteLevel()
    >>> specials = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"] + [
    ...     f"<special_{i}>" for i in range(11)]
    >>> hf.train_from_iterator(["the cat sat on the mat"] * 20, trainers.BpeTrainer(
    ...     vocab_size=300, special_tokens=specials, show_progress=False,
    ...     initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    >>> tokenizer = TokenizerJsonBytePairTokenizer(hf.to_str())
    >>> ids = tokenizer.tokenize("the mat")
    >>> ids.tolist() == hf.encode("the mat", add_special_tokens=False).ids
    True
    >>> tokenizer.detokenize(ids)
    'the mat'
    """

    def __init__(self, tokenizer_json=None, **kwargs):
        for name in ("vocabulary", "merges"):
            if kwargs.get(name) is not None:
                raise ValueError(
                    f"`{name}` comes from `tokenizer_json`; received {name}= as well."
                )
            kwargs.pop(name, None)
        if kwargs.get("sequence_length") is not None:
            raise ValueError(
                "TokenizerJsonBytePairTokenizer returns unpadded ids; received "
                f"sequence_length={kwargs['sequence_length']} (accepted: None)."
            )
        self._json_text = None
        self._hf_tokenizer = None
        vocabulary = merges = None
        if tokenizer_json is not None:
            self._json_text = _read_json_text(tokenizer_json)
            vocabulary, merges = self._parse_json()
        super().__init__(vocabulary=vocabulary, merges=merges, **kwargs)
        self.file_assets = self.file_assets + [TOKENIZER_JSON_FILENAME]

    def _parse_json(self):
        try:
            hf_tokenizer = HFTokenizer.from_str(self._json_text)
            model = json.loads(self._json_text)["model"]
        except Exception as error:  # tokenizers raises its own exception types
            raise ValueError(f"Not a valid tokenizer.json: {error}") from None
        if model.get("type") != "BPE":
            raise ValueError(
                f"The tokenizer.json must hold a BPE model; received type {model.get('type')!r}."
            )
        self._hf_tokenizer = hf_tokenizer
        vocabulary = hf_tokenizer.get_vocab(with_added_tokens=True)
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        return vocabulary, merges

    def _update_special_token_ids(self):
        named = special_tokens.SPECIAL_TOKENS[: special_tokens.MASK_TOKEN_ID + 1]
        wrong = {
            token: self.vocabulary.get(token)
            for token_id, token in enumerate(named)
            if self.vocabulary.get(token) != token_id
        }
        missing_ids = set(range(special_tokens.NUM_SPECIAL_TOKENS)) - set(
            self.vocabulary.values()
        )
        if wrong or missing_ids:
            raise ValueError(
                "The tokenizer.json must map <unk>, <s>, </s>, <pad>, <mask> to ids 0-4 "
                "and reserve ids 5-15; wrong or missing (None): "
                f"{wrong}, unused reserved ids: {sorted(missing_ids)}."
            )
        # Skip BytePairTokenizer's check of our <reserved_i> names.
        super(BytePairTokenizer, self)._update_special_token_ids()

    def _set_vocabulary_and_merges_tokenizers(self, vocabulary, merges):
        super()._set_vocabulary_and_merges_tokenizers(vocabulary, merges)
        if self._hf_tokenizer is not None:
            self._tokenizer = self._hf_tokenizer

    def _hf(self):
        if self._hf_tokenizer is None:
            raise ValueError(
                "No tokenizer.json is set: pass `tokenizer_json` or load a saved model."
            )
        return self._hf_tokenizer

    def tokenize(self, inputs):
        """`str` -> int32 array of ids; a list of `str` -> a list of arrays."""
        if isinstance(inputs, str):
            return self.tokenize_batch_to_arrays([inputs])[0]
        if isinstance(inputs, (list, tuple)) and all(isinstance(t, str) for t in inputs):
            return self.tokenize_batch_to_arrays(inputs)
        raise TypeError(
            "TokenizerJsonBytePairTokenizer tokenizes eagerly a `str` or a list of `str`; "
            f"received {type(inputs).__name__} (graph tensors are not supported)."
        )

    def tokenize_batch_to_arrays(self, texts):
        encodings = self._hf().encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]

    def detokenize(self, inputs):
        """Ids (a list, array or tensor; 1-D or 2-D) -> `str` (or a list of `str`)."""
        ids = np.asarray(keras.ops.convert_to_numpy(inputs)).astype("int64")
        if ids.ndim == 2:
            return [self.detokenize(row) for row in ids]
        return self._hf().decode(ids.reshape(-1).tolist(), skip_special_tokens=False)

    def save_assets(self, dir_path):
        super().save_assets(dir_path)
        Path(dir_path, TOKENIZER_JSON_FILENAME).write_text(self._json_text, encoding="utf-8")

    def load_assets(self, dir_path):
        self._json_text = Path(dir_path, TOKENIZER_JSON_FILENAME).read_text(encoding="utf-8")
        vocabulary, merges = self._parse_json()
        self.set_vocabulary_and_merges(vocabulary, merges)
