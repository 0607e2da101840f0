"""Tokenizers: round trips, fixed special ids, eager == tf.data, save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dualobj.data import (
    BytePairTokenizer,
    ByteTokenizer,
    load_corpus,
    load_tokenizer,
    save_tokenizer,
    special_tokens,
    tokenize_documents,
    train_bpe_tokenizer,
)

SPECIAL_ATTRIBUTES = {
    "unk_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "mask_token_id": 4,
}
# Multi-byte characters, tabs, runs of spaces, digits, apostrophes, and the
# literal text of special tokens (which must stay plain text).
TRICKY_TEXTS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "naïve café — 日本語 🙂\ttab  two  spaces\n\n  indented 12345 it's",
    "<s> and <mask> are just characters here </s>",
    " leading and trailing spaces ",
    "",
]


@pytest.fixture(scope="module")
def prose_documents(prose_file):
    corpus = load_corpus("text", path=prose_file, verbose=False)
    return list(corpus.documents)


@pytest.fixture(scope="module")
def bpe(prose_documents):
    return train_bpe_tokenizer(prose_documents, vocabulary_size=1024)


def _special_ids(tokenizer):
    return {name: getattr(tokenizer, name) for name in SPECIAL_ATTRIBUTES}


# --- byte tokenizer ---------------------------------------------------------


def test_byte_tokenizer_maps_bytes_after_the_16_reserved_ids():
    tokenizer = ByteTokenizer()
    assert tokenizer.vocabulary_size() == 272
    assert _special_ids(tokenizer) == SPECIAL_ATTRIBUTES
    ids = tokenizer.tokenize("é!")
    np.testing.assert_array_equal(ids, 16 + np.frombuffer("é!".encode(), np.uint8))
    assert ids.dtype == np.int32
    assert [tokenizer.id_to_token(i) for i in range(5)] == list(
        special_tokens.SPECIAL_TOKENS[:5]
    )
    assert tokenizer.token_to_id("<mask>") == 4
    assert tokenizer.token_to_id("A") == 16 + 65
    # Text that looks like a special token stays bytes.
    assert 1 not in tokenizer.tokenize("<s>").tolist()


def test_byte_tokenizer_round_trip_eager_and_in_tf_data():
    tokenizer = ByteTokenizer()
    batch = tokenizer.tokenize(TRICKY_TEXTS)
    assert tokenizer.detokenize(batch) == TRICKY_TEXTS
    for text in TRICKY_TEXTS:
        assert tokenizer.detokenize(tokenizer.tokenize(text)) == text

    dataset = tf.data.Dataset.from_tensor_slices(TRICKY_TEXTS).map(tokenizer.tokenize)
    graph_ids = [ids.tolist() for ids in dataset.as_numpy_iterator()]
    assert graph_ids == [list(ids) for ids in batch]
    decoded = tf.function(tokenizer.detokenize)(tf.ragged.constant(graph_ids))
    assert [t.decode("utf-8") for t in decoded.numpy()] == TRICKY_TEXTS


def test_byte_tokenizer_shows_special_ids_and_rejects_out_of_range():
    tokenizer = ByteTokenizer()
    assert tokenizer.detokenize([1, 16 + 104, 16 + 105, 2]) == "<s>hi</s>"
    with pytest.raises(ValueError, match=r"\[0, 272\).*\[272\]"):
        tokenizer.detokenize([16, 272])
    with pytest.raises(ValueError, match="errors"):
        ByteTokenizer(errors="ignore")


# --- BPE --------------------------------------------------------------------


def test_bpe_reserves_special_ids_then_bytes(bpe):
    assert bpe.vocabulary_size() == 1024
    assert _special_ids(bpe) == SPECIAL_ATTRIBUTES
    for token_id, token in enumerate(special_tokens.SPECIAL_TOKENS):
        assert bpe.token_to_id(token) == token_id
        assert bpe.id_to_token(token_id) == token
    # All 256 byte symbols come right after, so no text is ever <unk>.
    assert sorted(bpe.vocabulary[t] for t in bpe.vocabulary)[16:272] == list(range(16, 272))
    ids = np.concatenate(tokenize_documents(bpe, TRICKY_TEXTS))
    assert ids.min() >= 16, "text produced a special id (e.g. the literal '<s>')"


def test_bpe_round_trips_the_corpus_and_compresses_it(bpe, prose_documents):
    documents = prose_documents
    arrays = tokenize_documents(bpe, documents)
    assert bpe.detokenize([a.tolist() for a in arrays]) == documents
    num_tokens = sum(a.size for a in arrays)
    num_bytes = sum(len(d.encode()) for d in documents)
    assert num_tokens < 0.5 * num_bytes
    for text in TRICKY_TEXTS:
        assert bpe.detokenize(bpe.tokenize(text)) == text


def test_bpe_eager_batch_and_tf_data_paths_agree(bpe, prose_documents):
    # keras-hub's own eager path skips pre-splitting (see BytePairTokenizer);
    # ours must give the tf.data ids.
    sample = prose_documents[:40] + TRICKY_TEXTS[:-1]
    eager = [list(ids) for ids in bpe.tokenize(sample)]
    fast = [a.tolist() for a in bpe.tokenize_batch_to_arrays(sample)]
    dataset = tf.data.Dataset.from_tensor_slices(sample).batch(64).map(bpe.tokenize)
    graph = [row.tolist() for batch in dataset.as_numpy_iterator() for row in batch]
    assert eager == fast == graph


def test_bpe_training_is_deterministic(prose_documents):
    first = train_bpe_tokenizer(prose_documents[:2000], vocabulary_size=600)
    second = train_bpe_tokenizer(prose_documents[:2000], vocabulary_size=600)
    assert first.vocabulary == second.vocabulary
    assert first.merges == second.merges


def test_bpe_save_load_keeps_ids(bpe, tmp_path):
    save_tokenizer(bpe, tmp_path / "bpe")
    loaded = load_tokenizer(tmp_path / "bpe")
    assert isinstance(loaded, BytePairTokenizer)
    assert _special_ids(loaded) == SPECIAL_ATTRIBUTES
    assert loaded.vocabulary == bpe.vocabulary
    assert loaded.tokenize(TRICKY_TEXTS[1]).tolist() == bpe.tokenize(TRICKY_TEXTS[1]).tolist()

    save_tokenizer(ByteTokenizer(errors="strict"), tmp_path / "byte")
    loaded_byte = load_tokenizer(tmp_path / "byte")
    assert isinstance(loaded_byte, ByteTokenizer) and loaded_byte.errors == "strict"
    assert _special_ids(loaded_byte) == SPECIAL_ATTRIBUTES


class _ModelWithTokenizer(keras.Model):
    """The smallest model that owns a tokenizer the way `DualLM` does."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.dense = keras.layers.Dense(2)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        return self.dense(inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)


@pytest.mark.parametrize("kind", ["bpe", "byte"])
def test_tokenizer_is_saved_with_a_keras_model(kind, bpe, tmp_path):
    tokenizer = bpe if kind == "bpe" else ByteTokenizer()
    model = _ModelWithTokenizer(tokenizer)
    model(np.zeros((1, 3), "float32"))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(
        path, custom_objects={"_ModelWithTokenizer": _ModelWithTokenizer}
    )
    assert type(restored.tokenizer) is type(tokenizer)
    assert _special_ids(restored.tokenizer) == SPECIAL_ATTRIBUTES
    assert restored.tokenizer.vocabulary_size() == tokenizer.vocabulary_size()
    text = TRICKY_TEXTS[1]
    assert restored.tokenizer.tokenize(text).tolist() == tokenizer.tokenize(text).tolist()


def test_bpe_rejects_bad_vocabularies():
    with pytest.raises(ValueError, match="at least 272.*Received: 100"):
        train_bpe_tokenizer(["abc"], vocabulary_size=100)
    with pytest.raises(TypeError, match="iterable of str"):
        train_bpe_tokenizer("just one string", vocabulary_size=300)
    with pytest.raises(ValueError, match="empty corpus"):
        train_bpe_tokenizer(["", ""], vocabulary_size=300)
    # A GPT-2 style vocabulary without our reserved ids is refused by name.
    vocabulary = {"a": 0, "b": 1, "ab": 2}
    with pytest.raises(ValueError, match=r"ids 0..15.*'<unk>': None"):
        BytePairTokenizer(vocabulary=vocabulary, merges=["a b"])
