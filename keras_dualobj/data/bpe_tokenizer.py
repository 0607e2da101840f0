"""Byte-level BPE: trained offline with HF `tokenizers`, run as a keras-hub layer."""

import json
from collections.abc import Iterable

import keras
import keras_hub
import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from keras_dualobj.data import special_tokens

MIN_VOCABULARY_SIZE = special_tokens.NUM_SPECIAL_TOKENS + 256


def _gpt2_byte_level_pre_tokenizer(add_prefix_space):
    # The GPT-2 split regex: keras-hub's `tf.data` path (`split_strings_for_bpe`)
    # emulates exactly this one, so training, eager and graph tokenization agree.
    return pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=True)


@keras.saving.register_keras_serializable(package="keras_dualobj")
class BytePairTokenizer(keras_hub.tokenizers.BytePairTokenizer):
    """keras-hub's byte-level BPE with the 16 reserved special-token ids.

    The vocabulary must map `<unk>`=0, `<s>`=1, `</s>`=2, `<pad>`=3, `<mask>`=4
    and `<reserved_5>`…`<reserved_15>` to 5–15 (what `train_bpe_tokenizer`
    produces); the constructor checks it. Vocabulary and merges are saved as
    assets (`vocabulary.json`, `merges.txt`) with a model, as in keras-hub.

    Differences from `keras_hub.tokenizers.BytePairTokenizer`:

    - Eager calls pre-split text with the GPT-2 regex. keras-hub 0.32 hands its
      split regex to HF `tokenizers` as a plain string, which HF treats as a
      literal, so its eager path does no pre-splitting and disagrees with its
      own `tf.data` path. Here eager (HF, fast, batched) and graph (TF) paths
      give the same ids.
    - `unsplittable_tokens` defaults to none: special tokens are never read
      from text, so a corpus containing the characters `<mask>` cannot inject
      the mask id. The ids come only from code (packing, the model).

    Args:
        vocabulary: dict token → id, or path to a `vocabulary.json`.
        merges: list of `"a b"` merge rules, or path to a `merges.txt`.
        sequence_length: if set, outputs are padded/truncated to this length
            (keras-hub behaviour; padding uses `<pad>`).
        add_prefix_space: prepend a space to each input (GPT-2 option).
        unsplittable_tokens: tokens to match verbatim in text (default none).
        **kwargs: passed to `keras_hub.tokenizers.BytePairTokenizer`.

    Example:

    >>> tokenizer = train_bpe_tokenizer(["the cat sat on the mat"] * 20,
    ...                                 vocabulary_size=300)
    >>> ids = tokenizer.tokenize("the cat")
    >>> tokenizer.detokenize(ids)
    'the cat'
    >>> tokenizer.bos_token_id, tokenizer.mask_token_id, tokenizer.id_to_token(4)
    (1, 4, '<mask>')
    """

    def __init__(
        self,
        vocabulary=None,
        merges=None,
        sequence_length=None,
        add_prefix_space=False,
        unsplittable_tokens=None,
        **kwargs,
    ):
        special_tokens.register_special_tokens(self)
        super().__init__(
            vocabulary=vocabulary,
            merges=merges,
            sequence_length=sequence_length,
            add_prefix_space=add_prefix_space,
            unsplittable_tokens=[] if unsplittable_tokens is None else unsplittable_tokens,
            **kwargs,
        )

    def _update_special_token_ids(self):
        # keras-hub calls this once a vocabulary is set; check our fixed layout
        # first so that the error names the ids, not just a missing token.
        wrong = {
            token: self.vocabulary.get(token)
            for token_id, token in enumerate(special_tokens.SPECIAL_TOKENS)
            if self.vocabulary.get(token) != token_id
        }
        if wrong:
            raise ValueError(
                "The vocabulary must map the 16 reserved tokens to ids 0..15 "
                f"({dict(zip(special_tokens.SPECIAL_TOKENS[:5], range(5)))}, ...). "
                f"These are missing (None) or elsewhere: {wrong}. Train with "
                "`train_bpe_tokenizer`, which reserves them."
            )
        super()._update_special_token_ids()

    def _set_vocabulary_and_merges_tokenizers(self, vocabulary, merges):
        super()._set_vocabulary_and_merges_tokenizers(vocabulary, merges)
        self._tokenizer.pre_tokenizer = _gpt2_byte_level_pre_tokenizer(
            self.add_prefix_space
        )

    def tokenize_batch_to_arrays(self, texts):
        """Encodes many strings at once (HF batch encode) to int32 arrays.

        The fast path for corpus preparation: one call on a whole corpus runs
        in native code on all cores.

        Args:
            texts: a list of `str`.

        Returns:
            A list of 1-D int32 NumPy arrays, one per text.

        Example:

        >>> tokenizer = train_bpe_tokenizer(["ab ab ab"] * 10, vocabulary_size=280)
        >>> arrays = tokenizer.tokenize_batch_to_arrays(["ab ab", "b"])
        >>> [a.dtype.name for a in arrays], tokenizer.detokenize(arrays[0])
        (['int32', 'int32'], 'ab ab')
        """
        self._check_vocabulary()
        self._maybe_initialized_tokenizers()
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]


def train_bpe_tokenizer(
    documents,
    vocabulary_size,
    *,
    min_frequency=2,
    add_prefix_space=False,
):
    """Trains a byte-level BPE on `documents` in seconds (HF `tokenizers`).

    The vocabulary starts with the 16 reserved special tokens (ids 0–15), then
    all 256 byte symbols (ids 16–271, so no text is ever `<unk>`), then the
    learned merges up to `vocabulary_size`. Training is deterministic for the
    same documents. The result may hold fewer than `vocabulary_size` tokens if
    the corpus has fewer mergeable pairs occurring `min_frequency` times.

    Args:
        documents: an iterable of `str` (train on the training split only).
        vocabulary_size: int, at least 272 (16 special + 256 bytes).
        min_frequency: a pair must occur this often to be merged.
        add_prefix_space: GPT-2 option, see `BytePairTokenizer`.

    Returns:
        A `BytePairTokenizer`.

    Example:

    >>> tokenizer = train_bpe_tokenizer(["hello world"] * 50, vocabulary_size=290)
    >>> tokenizer.vocabulary_size() <= 290
    True
    >>> tokenizer.detokenize(tokenizer.tokenize("hello world"))
    'hello world'
    """
    if isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, int):
        raise TypeError(
            f"`vocabulary_size` must be an int. Received: {vocabulary_size!r}"
        )
    if vocabulary_size < MIN_VOCABULARY_SIZE:
        raise ValueError(
            f"`vocabulary_size` must be at least {MIN_VOCABULARY_SIZE} (16 special "
            f"tokens + 256 bytes). Received: {vocabulary_size}"
        )
    if isinstance(documents, str) or not isinstance(documents, Iterable):
        raise TypeError(
            "`documents` must be an iterable of str (a list of documents), not "
            f"{type(documents).__name__}."
        )
    documents = list(documents)
    if not any(documents):
        raise ValueError("Cannot train a tokenizer on an empty corpus (no text).")
    hf_tokenizer = HFTokenizer(models.BPE())
    hf_tokenizer.pre_tokenizer = _gpt2_byte_level_pre_tokenizer(add_prefix_space)
    hf_tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocabulary_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf_tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    model = json.loads(hf_tokenizer.to_str())["model"]
    # Merges are lists of two strings in tokenizers >= 0.20, "a b" strings before.
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return BytePairTokenizer(
        vocabulary=model["vocab"], merges=merges, add_prefix_space=add_prefix_space
    )
