"""Prompts in, completions out: strings or token ids, one prompt or a batch.

Decoding runs on rectangular int32 arrays; these helpers turn what a user passes
(a string, a list of strings, a list of ids, a list of id lists or a 2-D array) into
per-row id arrays and back into the same structure. A tokenizer is duck-typed: any
object with `tokenize(str) -> ids` and `detokenize(ids) -> str`.
"""

import numbers

import numpy as np


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def encode_prompts(prompts, tokenizer=None, bos_token_id=1, name="prompts"):
    """Turns prompts into a list of 1-D int32 arrays and remembers their structure.

    Strings are tokenized and get `bos_token_id` prepended (unless it is `None`), as
    documents do in training. Token ids are taken as given (start them with `<s>`).

    Args:
        prompts: a `str`, a list of `str`, a list of ints, a list of int lists, or
            an int array of rank 1 or 2.
        tokenizer: object with `tokenize`; required for strings.
        bos_token_id: id prepended to tokenized strings, or `None`.
        name: the argument's name in error messages.

    Returns:
        `(rows, structure)`: the id arrays and one of `"text"`, `"text_batch"`,
        `"ids"`, `"ids_batch"` for `decode_outputs`.

    Example:
    >>> rows, structure = encode_prompts([[1, 20, 21], [1, 30]])
    >>> [row.tolist() for row in rows], structure
    ([[1, 20, 21], [1, 30]], 'ids_batch')
    """
    if isinstance(prompts, str):
        return [_tokenize(prompts, tokenizer, bos_token_id, name)], "text"
    if isinstance(prompts, np.ndarray) or hasattr(prompts, "shape"):
        array = np.asarray(prompts)
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`{name}` as an array must hold integer token ids of rank 1 or 2; "
                f"received dtype {array.dtype} and shape {array.shape}."
            )
        if array.ndim == 1:
            return [_check_ids(array, name)], "ids"
        return [_check_ids(row, f"{name}[{i}]") for i, row in enumerate(array)], "ids_batch"
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise ValueError(
            f"`{name}` must be a string, a non-empty list of strings, a list of token "
            f"ids or a list of token-id lists; received {prompts!r}."
        )
    if all(isinstance(prompt, str) for prompt in prompts):
        rows = [
            _tokenize(prompt, tokenizer, bos_token_id, f"{name}[{i}]")
            for i, prompt in enumerate(prompts)
        ]
        return rows, "text_batch"
    if all(_is_int(token) for token in prompts):
        return [_check_ids(prompts, name)], "ids"
    rows = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str) or not hasattr(prompt, "__len__"):
            raise ValueError(
                f"`{name}` mixes kinds: every entry must be a string, or every entry a "
                f"list of token ids; received {name}[{i}]={prompt!r}."
            )
        rows.append(_check_ids(prompt, f"{name}[{i}]"))
    return rows, "ids_batch"


def _tokenize(text, tokenizer, bos_token_id, name):
    if tokenizer is None:
        raise ValueError(
            f"`{name}` is a string but the model has no tokenizer; pass token ids, or "
            "build the model with `tokenizer=` (any object with `tokenize` and "
            f"`detokenize`); received {name}={text!r}."
        )
    if text == "":
        raise ValueError(f"`{name}` must not be empty; received {name}={text!r}.")
    ids = np.asarray(_to_numpy(tokenizer.tokenize(text)), dtype="int32").reshape(-1)
    if bos_token_id is None:
        return ids
    return np.concatenate([np.array([bos_token_id], "int32"), ids])


def _to_numpy(values):
    if hasattr(values, "numpy"):
        return values.numpy()
    return values


def _check_ids(ids, name):
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty sequence of token ids; received {ids.tolist()!r}."
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"`{name}` must hold integer token ids; received dtype {ids.dtype}."
        )
    if ids.min() < 0:
        raise ValueError(f"`{name}` holds a negative token id; received {ids.tolist()!r}.")
    return ids.astype("int32")


def check_vocabulary(rows, vocabulary_size, name="prompts"):
    """Raises if an id is outside `[0, vocabulary_size)`.

    Example:
    >>> import numpy as np
    >>> check_vocabulary([np.array([1, 5])], vocabulary_size=8)
    """
    for i, row in enumerate(rows):
        if row.size and row.max() >= vocabulary_size:
            raise ValueError(
                f"`{name}` row {i} holds token id {int(row.max())}, outside the "
                f"vocabulary of {vocabulary_size} ids (0..{vocabulary_size - 1})."
            )


def check_sequence_length(backbone, length, what):
    """Raises if `length` tokens do not fit `backbone.max_sequence_length`."""
    limit = backbone.max_sequence_length
    if length > limit:
        raise ValueError(
            f"{what} is {length} tokens, beyond the backbone's max_sequence_length "
            f"of {limit}."
        )


def pad_rows(rows, length, pad_token_id):
    """Right-pads rows to `length`: int32 `token_ids [B, length]`.

    Example:
    >>> import numpy as np
    >>> pad_rows([np.array([1, 7]), np.array([1])], 3, 0).tolist()
    [[1, 7, 0], [1, 0, 0]]
    """
    token_ids = np.full((len(rows), length), pad_token_id, dtype="int32")
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
    return token_ids


def truncate_at_stop(row, start, stop_token_ids):
    """Cuts `row` after the first stop token at or after `start` (kept, as keras-hub).

    Example:
    >>> import numpy as np
    >>> truncate_at_stop(np.array([1, 2, 7, 2, 9]), start=2, stop_token_ids=(2,)).tolist()
    [1, 2, 7, 2]
    """
    if not stop_token_ids:
        return row
    generated = row[start:]
    stops = np.flatnonzero(np.isin(generated, np.asarray(stop_token_ids)))
    if stops.size == 0:
        return row
    return row[: start + stops[0] + 1]


def decode_outputs(rows, structure, tokenizer=None, special_token_ids=()):
    """Gives outputs the structure of the prompts (see `encode_prompts`).

    Token ids come back as 1-D int32 arrays; for string prompts the ids in
    `special_token_ids` (`DualLM` passes `<s>`, `</s>`, `<pad>`, `<mask>`) are dropped
    before detokenizing.

    Example:
    >>> import numpy as np
    >>> decode_outputs([np.array([1, 20, 21])], "ids").tolist()
    [1, 20, 21]
    """
    if structure in ("ids", "ids_batch"):
        outputs = [np.asarray(row, dtype="int32") for row in rows]
    else:
        special = np.asarray(special_token_ids, dtype="int32")
        outputs = [
            tokenizer.detokenize(row[~np.isin(row, special)].tolist()) for row in rows
        ]
        outputs = [_to_python_string(text) for text in outputs]
    if structure in ("ids", "text"):
        return outputs[0]
    return outputs


def _to_python_string(text):
    text = _to_numpy(text)
    if isinstance(text, np.ndarray):
        text = text.item()
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text
