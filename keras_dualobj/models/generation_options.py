"""`generate()`'s length and stop options, validated and given their defaults in one place.

The decoding method's own options live on its decoder object (`keras_dualobj.decoders`);
what is left to `generate` is how much to write and where a row ends.
"""

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

DEFAULT_MAX_NEW_TOKENS = 32


def resolve_lengths(max_length, max_new_tokens):
    """`(max_length, max_new_tokens)` with exactly one given: neither means 32 new tokens.

    Example:
    >>> resolve_lengths(None, None)
    (None, 32)
    >>> resolve_lengths(64, None)
    (64, None)
    """
    if max_length is not None and max_new_tokens is not None:
        raise ValueError(
            "Pass at most one of `max_length` (total tokens per row, keras-hub's) and "
            f"`max_new_tokens`; received max_length={max_length!r}, "
            f"max_new_tokens={max_new_tokens!r}."
        )
    if max_length is not None:
        return check_int("max_length", max_length, minimum=2), None
    max_new_tokens = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
    return None, check_int("max_new_tokens", max_new_tokens, minimum=1)


def resolve_stop_token_ids(stop_token_ids, eos_token_id, pad_token_id):
    """`"auto"` -> `(eos,)`; `None` -> `None`; an id or ids -> a tuple of ints.

    Example:
    >>> resolve_stop_token_ids("auto", eos_token_id=2, pad_token_id=3)
    (2,)
    """
    if stop_token_ids is None:
        return None
    if isinstance(stop_token_ids, str):
        check_choice("stop_token_ids", stop_token_ids, ("auto",))
        return (eos_token_id,)
    try:
        stop_token_ids = tuple(stop_token_ids)
    except TypeError:
        stop_token_ids = (stop_token_ids,)
    for token_id in stop_token_ids:
        check_int("stop_token_ids", token_id, minimum=0)
    if pad_token_id in stop_token_ids:
        # Rows are padded with it before decoding: every row would look finished.
        raise ValueError(
            f"`stop_token_ids` must not contain the padding id {pad_token_id}; "
            f"received stop_token_ids={stop_token_ids}."
        )
    return tuple(int(token_id) for token_id in stop_token_ids) or None
