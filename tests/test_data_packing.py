"""Packing: rows decode back to the documents; document ids change at starts."""

import numpy as np
import pytest

from keras_dualobj.data import (
    ByteTokenizer,
    load_corpus,
    pack_documents,
    tokenize_documents,
    train_bpe_tokenizer,
    unpack_rows,
)

# NumPy, files and text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

BOS, EOS = 1, 2


@pytest.fixture(scope="module")
def documents(prose_file):
    corpus = load_corpus("text", path=prose_file, verbose=False)
    return list(corpus.documents[:1500])


@pytest.fixture(scope="module", params=["byte", "bpe"])
def tokenizer(request, documents):
    if request.param == "byte":
        return ByteTokenizer()
    return train_bpe_tokenizer(documents, vocabulary_size=512)


@pytest.mark.parametrize("append_eos", [False, True])
def test_rows_decode_back_to_the_documents(tokenizer, documents, append_eos):
    sequence_length = 37  # prime: rows cut documents at varied places
    token_arrays = tokenize_documents(tokenizer, documents)
    rows = pack_documents(
        token_arrays, sequence_length, eos_token_id=EOS if append_eos else None
    )
    per_document = 1 + append_eos
    stream_length = sum(a.size + per_document for a in token_arrays)
    assert rows.num_tokens + rows.num_remainder_tokens == stream_length
    assert rows.num_remainder_tokens < sequence_length
    assert rows.token_ids.dtype == rows.document_ids.dtype == np.int32
    assert rows.token_ids.shape == (stream_length // sequence_length, sequence_length)

    pieces = unpack_rows(rows.token_ids, rows.document_ids)
    # All complete documents come back exactly; the last piece lost only the
    # documented remainder.
    for index, piece in enumerate(pieces[:-1]):
        assert piece[0] == BOS
        body = piece[1:-1] if append_eos else piece[1:]
        if append_eos:
            assert piece[-1] == EOS
        assert tokenizer.detokenize(body.tolist()) == documents[index]
    last_index = len(pieces) - 1
    expected_last = np.concatenate(
        [[BOS], token_arrays[last_index]] + ([[EOS]] if append_eos else [])
    )
    missing = expected_last.size - pieces[-1].size
    assert 0 <= missing and np.array_equal(pieces[-1], expected_last[: pieces[-1].size])
    later = sum(a.size + per_document for a in token_arrays[last_index + 1 :])
    assert missing + later == rows.num_remainder_tokens


def test_document_ids_change_exactly_at_document_starts(tokenizer, documents):
    rows = pack_documents(tokenize_documents(tokenizer, documents), 64)
    tokens = rows.token_ids.reshape(-1)
    ids = rows.document_ids.reshape(-1)
    starts = np.flatnonzero(tokens == BOS)  # <s> never comes from text
    changes = np.flatnonzero(np.diff(ids)) + 1
    assert starts[0] == 0
    np.testing.assert_array_equal(changes, starts[1:])
    # Ids count documents, so a document cut by a row boundary keeps its id.
    np.testing.assert_array_equal(ids[starts], np.arange(starts.size))
    row_starts_mid_document = rows.token_ids[1:, 0] != BOS
    assert row_starts_mid_document.any()
    np.testing.assert_array_equal(
        rows.document_ids[1:, 0][row_starts_mid_document],
        rows.document_ids[:-1, -1][row_starts_mid_document],
    )


def test_exact_fit_leaves_no_remainder():
    rows = pack_documents([[20, 21, 22], [30, 31, 32]], 4)
    assert rows.num_remainder_tokens == 0 and rows.num_rows == 2
    assert rows.document_ids.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]


def test_packing_rejects_bad_input():
    with pytest.raises(ValueError, match=r"sequence_length.*>= 2.*Received: 1"):
        pack_documents([[20, 21]], 1)
    with pytest.raises(TypeError, match="sequence_length"):
        pack_documents([[20, 21]], 4.0)
    with pytest.raises(ValueError, match="empty corpus"):
        pack_documents([], 4)
    with pytest.raises(
        ValueError, match=r"shorter than one row: 5 tokens.*2 documents.*sequence_length=8"
    ):
        pack_documents([[20, 21], [30]], 8)
    with pytest.raises(TypeError, match="Document 1.*integer"):
        pack_documents([[20, 21], [0.5, 1.5]], 2)
    with pytest.raises(TypeError, match="Tokenize first"):
        pack_documents("raw text", 2)
