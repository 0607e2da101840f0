"""`DualLMPreprocessor`: strings -> the `token_ids` / `document_ids` rows `DualLM` trains on.

The keras-hub preprocessor of our task (as `CausalLMPreprocessor` is of a
`CausalLM`): held as `model.preprocessor`, so `fit()`, `evaluate()` and `generate()`
take raw strings, and saved with `save_to_preset`. It differs from keras-hub's in two
ways, because the dual objective builds its own targets: it returns features only (no
`y`, no `sample_weight`), and instead of a `padding_mask` it returns `document_ids`
(the text is document 0, the padding document 1), so padding is never attended to in
either attention mode. A string longer than `sequence_length` is an error, never
truncated.
"""

import contextlib
import re

import keras
import numpy as np
import tensorflow as tf
from keras_hub.models import Preprocessor

from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.models.task_inputs import DEFAULT_SPECIAL_TOKEN_IDS
from keras_dualobj.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualLMPreprocessor(Preprocessor):
    """Tokenizes strings into rows for `DualLM`: `<s>` + tokens (+ `</s>`), padded.

    Args:
        tokenizer: a keras-hub tokenizer (`keras_dualobj.data.ByteTokenizer` or
            `BytePairTokenizer`; inside `tf.data` it must tokenize TF strings), or
            any object with `tokenize` and `detokenize` for eager use.
        sequence_length: int >= 2. Tokens per training row.
        add_end_token: bool. Append `</s>` to each string in training rows.
        bos_token_id, eos_token_id, pad_token_id, mask_token_id: ints; default to
            the tokenizer's, else `1, 2, 3, 4` (the reference layout).

    Calling it on a batch of strings gives `{"token_ids", "document_ids"}`, int32
    `[batch, sequence_length]`; it runs in eager mode and inside `tf.data`.
    `generate_preprocess` / `generate_postprocess` are the prompt-side pair that
    `DualLM.generate` uses.

    Example:
    >>> from keras_dualobj.data import ByteTokenizer
    >>> preprocessor = DualLMPreprocessor(ByteTokenizer(), sequence_length=8)
    >>> features = preprocessor(["ab", "xyz"])
    >>> features["token_ids"][0].numpy().tolist(), features["document_ids"][0].numpy().tolist()
    ([1, 113, 114, 3, 3, 3, 3, 3], [0, 0, 0, 1, 1, 1, 1, 1])
    >>> prompts = preprocessor.generate_preprocess(["ab", "xyz"])
    >>> prompts["token_ids"].tolist(), prompts["padding_mask"].sum(axis=1).tolist()
    ([[1, 113, 114, 3], [1, 136, 137, 138]], [3, 4])
    >>> preprocessor.generate_postprocess(prompts)
    ['ab', 'xyz']
    """

    def __init__(
        self,
        tokenizer,
        sequence_length=128,
        add_end_token=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        mask_token_id=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        # No weights here: marked built, so that Keras's trainer (which checks every
        # sublayer of the model) does not re-trace the model before each step.
        self.built = True
        if isinstance(tokenizer, keras.layers.Layer):
            tokenizer.built = True
        self.sequence_length = check_int("sequence_length", sequence_length, minimum=2)
        if not isinstance(add_end_token, bool):
            raise TypeError(f"`add_end_token` must be True or False; received {add_end_token!r}.")
        self.add_end_token = add_end_token
        explicit = {
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
            "pad_token_id": pad_token_id,
            "mask_token_id": mask_token_id,
        }
        # Explicit, else the tokenizer's, else the reference layout (DESIGN.md §1).
        for name, default in DEFAULT_SPECIAL_TOKEN_IDS.items():
            value = explicit[name]
            if value is None:
                value = getattr(tokenizer, name, None)
            setattr(self, name, check_int(name, default if value is None else value, minimum=0))

    def call(self, x, y=None, sample_weight=None):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "`DualLM` builds its own targets; its preprocessor takes strings only, "
                "no labels or sample weights."
            )
        x = tf.convert_to_tensor(x, dtype=tf.string)
        unbatched = x.shape.rank == 0
        if unbatched:
            x = x[tf.newaxis]
        tokens = self.tokenizer.tokenize(x)
        if isinstance(tokens, (list, tuple, np.ndarray)):  # a tokenizer's eager path
            tokens = tf.ragged.constant([list(row) for row in tokens], dtype="int32")
        elif not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        tokens = tf.cast(tokens, "int32")
        batch = tokens.nrows()
        pieces = [tf.fill([batch, 1], self.bos_token_id), tokens]
        if self.add_end_token:
            pieces.append(tf.fill([batch, 1], self.eos_token_id))
        tokens = tf.concat(pieces, axis=1)
        lengths = tokens.row_lengths()
        if tf.executing_eagerly() and int(tf.reduce_max(lengths)) > self.sequence_length:
            row = int(tf.argmax(lengths))
            raise ValueError(
                f"String {row} is {int(lengths[row])} tokens with <s>, longer than "
                f"sequence_length={self.sequence_length}; split the text or raise "
                "sequence_length (it is never truncated)."
            )
        checks = [
            tf.debugging.assert_less_equal(
                tf.cast(lengths, "int32"),
                self.sequence_length,
                message=(
                    f"{_PIPELINE_ERROR}a string is longer than sequence_length="
                    f"{self.sequence_length} tokens (with <s>); split the text or raise "
                    "sequence_length (it is never truncated)."
                ),
            )
        ]
        with tf.control_dependencies(checks):
            token_ids = tokens.to_tensor(
                default_value=self.pad_token_id,
                shape=[None, self.sequence_length],
            )
        positions = tf.range(self.sequence_length, dtype=lengths.dtype)[tf.newaxis, :]
        document_ids = tf.cast(positions >= lengths[:, tf.newaxis], "int32")
        features = {"token_ids": token_ids, "document_ids": document_ids}
        if unbatched:
            features = {name: value[0] for name, value in features.items()}
        return features

    def generate_preprocess(self, x):
        """Prompts (a string or strings) -> `{"token_ids", "padding_mask"}`, right-padded.

        Each prompt gets `<s>` prepended and no `</s>`; rows are padded to the
        longest prompt (not to `sequence_length`: decoding adds the room it needs).
        """
        if isinstance(x, np.ndarray):
            x = x.tolist()
        if isinstance(x, bytes):
            x = x.decode("utf-8")
        if isinstance(x, (list, tuple)):
            x = [item.decode("utf-8") if isinstance(item, bytes) else item for item in x]
        rows, _ = encode_prompts(x, self.tokenizer, self.bos_token_id)
        length = max(len(row) for row in rows)
        token_ids = np.full((len(rows), length), self.pad_token_id, "int32")
        padding_mask = np.zeros((len(rows), length), bool)
        for index, row in enumerate(rows):
            token_ids[index, : len(row)] = row
            padding_mask[index, : len(row)] = True
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    def generate_postprocess(self, x):
        """`{"token_ids", "padding_mask"}` -> a list of strings, special tokens dropped."""
        token_ids = np.asarray(x["token_ids"])
        padding_mask = np.asarray(x.get("padding_mask", np.ones(token_ids.shape, bool)), bool)
        special = [self.bos_token_id, self.eos_token_id, self.pad_token_id, self.mask_token_id]
        outputs = []
        for row, mask in zip(token_ids, padding_mask):
            row = row[mask]
            text = self.tokenizer.detokenize(row[~np.isin(row, special)].tolist())
            if hasattr(text, "numpy"):
                text = text.numpy()
            if isinstance(text, np.ndarray):
                text = text.item()
            outputs.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "add_end_token": self.add_end_token,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id,
                "pad_token_id": self.pad_token_id,
                "mask_token_id": self.mask_token_id,
            }
        )
        return config


# Marks the preprocessor's own checks inside `tf.data`, where they fail as a TensorFlow
# InvalidArgumentError; `pipeline_errors` re-raises them as a ValueError.
_PIPELINE_ERROR = "DualLMPreprocessor: "


def _is_text(x):
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        return isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "USO"
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(s, (str, bytes)) for s in x)


def preprocess_fit_inputs(preprocessor, x, batch_size):
    """`(x, batch_size)` for `fit`/`evaluate`: strings become a preprocessed `tf.data`.

    Strings in memory are tokenized here, at once, so that a string longer than
    `sequence_length` is a `ValueError` naming it before training starts. Token ids and
    datasets of token ids pass through unchanged.
    """
    if not _is_text(x):
        return x, batch_size
    if preprocessor is None:
        raise ValueError(
            "Strings need a tokenizer, and this model has none: build it with "
            "`DualLM(backbone, tokenizer=...)` (e.g. `keras_dualobj.data.ByteTokenizer()`), "
            f"or pass token ids of shape [batch, length]; received {_describe_text(x)}."
        )
    if isinstance(x, tf.data.Dataset):
        return x.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE), batch_size
    strings = [s.encode("utf-8") if isinstance(s, str) else s for s in np.asarray(x).tolist()]
    # `call`, not `__call__`: Keras would wrap a too-long string's error in its own.
    features = {name: value.numpy() for name, value in preprocessor.call(strings).items()}
    dataset = tf.data.Dataset.from_tensor_slices(features)
    return dataset.batch(32 if batch_size is None else batch_size), None


def _describe_text(x):
    if isinstance(x, tf.data.Dataset):
        return "a tf.data.Dataset of strings"
    return f"{len(x)} strings"


@contextlib.contextmanager
def pipeline_errors():
    """Re-raises a `DualLMPreprocessor` check that failed inside `tf.data` as a `ValueError`
    with its own message (TensorFlow buries it in an `InvalidArgumentError`)."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(rf"\[{re.escape(_PIPELINE_ERROR)}([^\]]*)\]", str(error))
        if found is None:
            raise
        raise ValueError(f"In the input pipeline: {found.group(1)}") from None
