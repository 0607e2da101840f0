"""Packing tokenized documents into fixed-length rows with document ids."""

from dataclasses import dataclass

import numpy as np

from keras_dualobj.data import special_tokens


@dataclass(frozen=True)
class PackedRows:
    """Fixed-length rows cut from the concatenated token stream.

    Attributes:
        token_ids: int32 array `[num_rows, sequence_length]`.
        document_ids: int32 array `[num_rows, sequence_length]`; the index of
            the document each token belongs to (0 for the first document of
            the corpus). Equal within a document, different across documents;
            a document cut by a row boundary keeps its id in the next row.
        num_remainder_tokens: tokens at the end of the stream that do not fill
            a whole row and are left out (always `< sequence_length`).
        num_documents: documents packed (including any only partly in rows).

    Example:

    >>> rows = pack_documents([[20, 21, 22], [30, 31]], sequence_length=4)
    >>> rows.token_ids.tolist(), rows.num_remainder_tokens
    ([[1, 20, 21, 22]], 3)
    """

    token_ids: np.ndarray
    document_ids: np.ndarray
    num_remainder_tokens: int
    num_documents: int

    @property
    def sequence_length(self):
        return int(self.token_ids.shape[1])

    @property
    def num_rows(self):
        return int(self.token_ids.shape[0])

    @property
    def num_tokens(self):
        """Tokens in whole rows (the remainder excluded)."""
        return int(self.token_ids.size)


def _validate_sequence_length(sequence_length):
    if isinstance(sequence_length, bool) or not isinstance(
        sequence_length, (int, np.integer)
    ):
        raise TypeError(
            f"`sequence_length` must be an int >= 2. Received: {sequence_length!r}"
        )
    if sequence_length < 2:
        raise ValueError(
            "`sequence_length` must be >= 2 (a row predicts sequence_length - 1 "
            f"next tokens). Received: {sequence_length}"
        )


def pack_documents(
    documents_token_ids,
    sequence_length,
    *,
    bos_token_id=special_tokens.BOS_TOKEN_ID,
    eos_token_id=None,
):
    """Concatenates tokenized documents and cuts the stream into rows.

    Each document becomes `<s>` + its tokens (+ `</s>` if `eos_token_id` is
    given); the documents are concatenated in order and cut into rows of
    `sequence_length` tokens. A document longer than what is left of a row
    continues in the next row. Every token lands in a row except the
    `num_remainder_tokens` at the very end of the stream that do not fill a
    last row: those are left out (the end of the last document, or of the
    last few).

    Args:
        documents_token_ids: sequence of 1-D integer arrays/lists, one per
            document (without `<s>`).
        sequence_length: int >= 2, tokens per row.
        bos_token_id: id prepended to every document (`<s>` = 1).
        eos_token_id: if not `None`, id appended to every document.

    Returns:
        A `PackedRows`.

    Example:

    >>> rows = pack_documents([[20, 21], [30, 31, 32], [40]], sequence_length=4)
    >>> rows.token_ids.tolist()
    [[1, 20, 21, 1], [30, 31, 32, 1]]
    >>> rows.document_ids.tolist()
    [[0, 0, 0, 1], [1, 1, 1, 2]]
    >>> rows.num_remainder_tokens  # the final [40]
    1
    """
    _validate_sequence_length(sequence_length)
    if isinstance(documents_token_ids, (str, bytes)):
        raise TypeError(
            "`documents_token_ids` must be a sequence of token-id arrays; got a "
            "string. Tokenize first (see `tokenize_documents`)."
        )
    documents_token_ids = list(documents_token_ids)
    if not documents_token_ids:
        raise ValueError("Cannot pack an empty corpus: 0 documents.")
    pieces = []
    separator = np.array([bos_token_id], dtype=np.int32)
    terminator = None if eos_token_id is None else np.array([eos_token_id], np.int32)
    lengths = np.empty(len(documents_token_ids), dtype=np.int64)
    for index, ids in enumerate(documents_token_ids):
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise TypeError(
                f"Document {index} must be a 1-D sequence of integer token ids. "
                f"Received dtype {ids.dtype}, shape {ids.shape}."
            )
        pieces.append(separator)
        pieces.append(ids.astype(np.int32, copy=False))
        if terminator is not None:
            pieces.append(terminator)
        lengths[index] = ids.size + 1 + (terminator is not None)
    stream = np.concatenate(pieces)
    num_rows, remainder = divmod(stream.size, sequence_length)
    if num_rows == 0:
        raise ValueError(
            f"The corpus is shorter than one row: {stream.size} tokens (from "
            f"{len(documents_token_ids)} documents, each with <s>) < "
            f"sequence_length={sequence_length}. Use more text or a shorter "
            "sequence_length."
        )
    kept = num_rows * sequence_length
    document_ids = np.repeat(
        np.arange(len(documents_token_ids), dtype=np.int32), lengths
    )
    return PackedRows(
        token_ids=stream[:kept].reshape(num_rows, sequence_length),
        document_ids=document_ids[:kept].reshape(num_rows, sequence_length),
        num_remainder_tokens=int(remainder),
        num_documents=len(documents_token_ids),
    )


def unpack_rows(token_ids, document_ids):
    """Splits rows back into per-document token arrays (inverse of packing).

    Consecutive rows are treated as one stream; a new document starts wherever
    the document id changes. Each returned array still begins with `<s>`
    (unless the first row starts mid-document).

    Args:
        token_ids: int array `[num_rows, sequence_length]`.
        document_ids: int array of the same shape.

    Returns:
        A list of 1-D int32 arrays, one per document piece, in order.

    Example:

    >>> rows = pack_documents([[20, 21], [30, 31, 32, 33]], sequence_length=4)
    >>> [d.tolist() for d in unpack_rows(rows.token_ids, rows.document_ids)]
    [[1, 20, 21], [1, 30, 31, 32, 33]]
    """
    token_ids = np.asarray(token_ids).reshape(-1)
    document_ids = np.asarray(document_ids).reshape(-1)
    if token_ids.shape != document_ids.shape:
        raise ValueError(
            f"`token_ids` and `document_ids` differ in shape: {token_ids.shape} vs "
            f"{document_ids.shape}."
        )
    starts = np.flatnonzero(np.diff(document_ids)) + 1
    return [piece.astype(np.int32) for piece in np.split(token_ids, starts)]
