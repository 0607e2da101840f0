"""A byte-level tokenizer that needs no training: id = 16 + byte."""

import keras
import numpy as np
import tensorflow as tf
from keras_hub.tokenizers import Tokenizer

from keras_dualobj.data import special_tokens

BYTE_OFFSET = special_tokens.NUM_SPECIAL_TOKENS


@keras.saving.register_keras_serializable(package="keras_dualobj")
class ByteTokenizer(Tokenizer):
    """Maps UTF-8 bytes to ids `16 + byte`, after the 16 reserved ids.

    Vocabulary size 272: ids 0–15 are the special tokens of
    `keras_dualobj.data.special_tokens` (`<unk>`=0, `<s>`=1, `</s>`=2,
    `<pad>`=3, `<mask>`=4, `<reserved_5>`…), ids 16–271 the 256 byte values.
    Every string round-trips exactly; there is nothing to train and no assets
    to save. Special tokens are never produced from text: the characters
    `<s>` in a document are three bytes, so a corpus cannot inject control ids.

    Eager calls run in Python/NumPy; inside `tf.data` or a `tf.function` the
    same mapping runs as TensorFlow ops. Outputs follow keras-hub's tokenizers:
    a string gives a 1-D int32 array, a list of strings a list of id lists
    (a ragged tensor in graph mode).

    Args:
        errors: how `detokenize` treats byte sequences that are not valid
            UTF-8 (possible when decoding a slice of a document): `"replace"`
            (default, U+FFFD) or `"strict"` (raise).
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Example:

    >>> tokenizer = ByteTokenizer()
    >>> tokenizer.vocabulary_size()
    272
    >>> tokenizer.tokenize("hi").tolist()  # 16 + ord("h"), 16 + ord("i")
    [120, 121]
    >>> tokenizer.detokenize([1, 120, 121])
    '<s>hi'
    >>> tokenizer.mask_token_id, tokenizer.id_to_token(4)
    (4, '<mask>')
    """

    def __init__(self, errors="replace", dtype="int32", **kwargs):
        if errors not in ("replace", "strict"):
            raise ValueError(
                f"`errors` must be 'replace' or 'strict'. Received: errors={errors!r}"
            )
        super().__init__(dtype=dtype, **kwargs)
        self.errors = errors
        special_tokens.register_special_tokens(self)
        self._tf_id_to_bytes = None

    # --- vocabulary ---------------------------------------------------------

    def vocabulary_size(self):
        """Number of ids: 16 special + 256 bytes = 272."""
        return BYTE_OFFSET + 256

    def get_vocabulary(self):
        """All 272 tokens; byte `b` is shown as `chr(b)` (Latin-1)."""
        return list(special_tokens.SPECIAL_TOKENS) + [chr(b) for b in range(256)]

    def id_to_token(self, id):
        """The token for `id`: a special token or a one-character byte."""
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            raise TypeError(f"`id` must be an integer. Received: {id!r}")
        if not 0 <= id < self.vocabulary_size():
            raise ValueError(
                f"`id` must be in [0, {self.vocabulary_size()}). Received: {id}"
            )
        if id < BYTE_OFFSET:
            return special_tokens.SPECIAL_TOKENS[id]
        return chr(id - BYTE_OFFSET)

    def token_to_id(self, token):
        """The id of a special token or of a one-character byte (`chr(b)`, b < 256)."""
        if token in special_tokens.SPECIAL_TOKENS:
            return special_tokens.SPECIAL_TOKENS.index(token)
        if isinstance(token, str) and len(token) == 1 and ord(token) < 256:
            return BYTE_OFFSET + ord(token)
        raise ValueError(
            f"Token {token!r} is not in the ByteTokenizer vocabulary: accepted "
            "are the 16 special tokens and single characters chr(0)..chr(255)."
        )

    # --- tokenize -------------------------------------------------------------

    def tokenize(self, inputs):
        """Encodes a string (or a batch of strings) to UTF-8 byte ids.

        Args:
            inputs: a `str`, a list/tuple of `str`, or a string tensor.
        """
        if self._use_tf_workflow():
            return self._tokenize_tf(inputs)
        return self._tokenize_python(inputs)

    def _tokenize_python(self, inputs):
        if isinstance(inputs, tf.Tensor):
            inputs = inputs.numpy()
            inputs = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
        if isinstance(inputs, (str, bytes)):
            return self._encode_one(inputs)
        if isinstance(inputs, (list, tuple)):
            return [self._encode_one(text).tolist() for text in inputs]
        raise TypeError(
            "`tokenize()` accepts a str, a list/tuple of str or a string tensor. "
            f"Received: {type(inputs).__name__}"
        )

    def _encode_one(self, text):
        if isinstance(text, str):
            text = text.encode("utf-8")
        elif not isinstance(text, bytes):
            raise TypeError(
                f"Every input must be a str. Received: {type(text).__name__} {text!r}"
            )
        return np.frombuffer(text, dtype=np.uint8).astype(self.compute_dtype) + (
            BYTE_OFFSET
        )

    def _tokenize_tf(self, inputs):
        inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        byte_strings = tf.strings.bytes_split(inputs)

        def to_ids(single_bytes):
            # Each element is exactly one byte; reshape (not squeeze) so that an
            # empty string gives shape [0] rather than failing on [0, 0].
            return tf.reshape(tf.io.decode_raw(single_bytes, tf.uint8), [-1])

        if isinstance(byte_strings, tf.RaggedTensor):
            ids = tf.ragged.map_flat_values(to_ids, byte_strings)
        else:
            ids = to_ids(byte_strings)
        return tf.cast(ids, self.compute_dtype) + BYTE_OFFSET

    def tokenize_batch_to_arrays(self, texts):
        """Encodes many strings at once to int32 arrays (corpus preparation).

        Args:
            texts: a list of `str`.

        Returns:
            A list of 1-D int32 NumPy arrays, one per text.

        Example:

        >>> [a.tolist() for a in ByteTokenizer().tokenize_batch_to_arrays(["a", "é"])]
        [[113], [211, 185]]
        """
        return [self._encode_one(text) for text in texts]

    # --- detokenize ---------------------------------------------------------

    def detokenize(self, inputs):
        """Decodes ids back to text; special ids are shown as their token.

        Args:
            inputs: one sequence of ids (list, array or tensor) or a batch of
                sequences (list of lists, 2-D array or ragged tensor).
        """
        if self._use_tf_workflow():
            return self._detokenize_tf(inputs)
        return self._detokenize_python(inputs)

    def _detokenize_python(self, inputs):
        if isinstance(inputs, tf.RaggedTensor):
            inputs = inputs.to_list()
        elif isinstance(inputs, tf.Tensor) or keras.ops.is_tensor(inputs):
            inputs = keras.ops.convert_to_numpy(inputs)
        if isinstance(inputs, (int, np.integer)):
            return self._decode_one([inputs])
        if isinstance(inputs, np.ndarray):
            if inputs.ndim == 1:
                return self._decode_one(inputs)
            if inputs.ndim == 2:
                return [self._decode_one(row) for row in inputs]
            raise ValueError(
                f"`detokenize()` takes 1-D or 2-D ids. Received shape {inputs.shape}"
            )
        if isinstance(inputs, (list, tuple)):
            if len(inputs) and not isinstance(inputs[0], (int, np.integer)):
                return [self._decode_one(row) for row in inputs]
            return self._decode_one(inputs)
        raise TypeError(
            "`detokenize()` accepts ids as a list, array or tensor. "
            f"Received: {type(inputs).__name__}"
        )

    def _decode_one(self, ids):
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = ids[(ids < 0) | (ids >= self.vocabulary_size())]
        if bad.size:
            raise ValueError(
                f"Token ids must be in [0, {self.vocabulary_size()}). "
                f"Received out-of-range ids: {sorted(set(bad.tolist()))[:10]}"
            )
        pieces = []
        # Runs of byte ids decode together so that multi-byte characters survive.
        is_special = ids < BYTE_OFFSET
        start = 0
        for i in np.flatnonzero(is_special).tolist() + [len(ids)]:
            if i > start:
                raw = (ids[start:i] - BYTE_OFFSET).astype(np.uint8).tobytes()
                pieces.append(raw.decode("utf-8", errors=self.errors))
            if i < len(ids):
                pieces.append(special_tokens.SPECIAL_TOKENS[ids[i]])
            start = i + 1
        return "".join(pieces)

    def _detokenize_tf(self, inputs):
        if self._tf_id_to_bytes is None:
            table = [t.encode("utf-8") for t in special_tokens.SPECIAL_TOKENS]
            table += [bytes([b]) for b in range(256)]
            self._tf_id_to_bytes = tf.constant(table)
        if not isinstance(inputs, tf.RaggedTensor):
            inputs = tf.convert_to_tensor(inputs)
        unbatched = inputs.shape.rank == 1
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        pieces = tf.gather(self._tf_id_to_bytes, tf.cast(inputs, tf.int32))
        text = tf.strings.reduce_join(pieces, axis=-1)
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace" if self.errors == "replace" else "strict"
        )
        return tf.squeeze(text, 0) if unbatched else text

    def save_assets(self, dir_path):
        """Nothing to write: the byte vocabulary is fixed (keras-hub's preset hook)."""

    def load_assets(self, dir_path):
        """Nothing to read (see `save_assets`)."""

    def load_preset_assets(self, preset):
        """Nothing to read from a keras-hub preset (see `save_assets`)."""

    def get_config(self):
        config = super().get_config()
        config.update({"errors": self.errors})
        return config
