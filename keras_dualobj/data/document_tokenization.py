"""Tokenizing a whole corpus at once, fast, with any of our tokenizers."""

import numpy as np


def tokenize_documents(tokenizer, documents, *, batch_size=4096):
    """Tokenizes every document to a 1-D int32 array, in batches.

    Uses the tokenizer's `tokenize_batch_to_arrays` when it has one (our
    `ByteTokenizer`: NumPy; our `BytePairTokenizer`: HF batch encode in native
    code, the same ids as its `tokenize`); any other keras-hub tokenizer is
    called eagerly on batches of `batch_size` documents.

    Args:
        tokenizer: a keras-hub style tokenizer.
        documents: sequence of `str`.
        batch_size: documents per call.

    Returns:
        A list of 1-D int32 NumPy arrays, one per document (no `<s>`).

    Example:

    >>> from keras_dualobj.data import ByteTokenizer
    >>> [a.tolist() for a in tokenize_documents(ByteTokenizer(), ["hi", ""])]
    [[120, 121], []]
    """
    documents = list(documents)
    for index, document in enumerate(documents):
        if not isinstance(document, str):
            raise TypeError(
                f"Document {index} must be a str. Received {type(document).__name__}."
            )
    fast = getattr(tokenizer, "tokenize_batch_to_arrays", None)
    arrays = []
    for start in range(0, len(documents), batch_size):
        batch = documents[start : start + batch_size]
        if fast is not None:
            arrays.extend(fast(batch))
            continue
        for ids in tokenizer.tokenize(batch):
            ids = ids.numpy() if hasattr(ids, "numpy") else ids
            arrays.append(np.asarray(ids, dtype=np.int32).reshape(-1))
    return arrays
