"""What `DualLM` accepts: input features, special token ids and the attention modes.

One vocabulary of modes across the whole API — `call`, `generate`, `score`,
`evaluate_multiple_choice` and the CLI — named after the model's faces:

- `"ar"`: causal attention (the AR face);
- `"md"`: bidirectional attention (the MD face);
- `"prefix"`: bidirectional over a prefix, causal after (prefix-LM).

`"causal"` and `"bidirectional"`, the names `call` used before, are still accepted
by `call` with a `DeprecationWarning` (they name the same masks as `"ar"` / `"md"`).
"""

import warnings

from keras import ops

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

ATTENTION_MODES = ("ar", "md", "prefix")
DEPRECATED_ATTENTION_MODES = {"causal": "ar", "bidirectional": "md"}
# The reference layout (DESIGN.md §1): <unk>=0 <s>=1 </s>=2 <pad>=3 <mask>=4.
DEFAULT_SPECIAL_TOKEN_IDS = {
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "mask_token_id": 4,
}
FEATURE_NAMES = ("token_ids", "document_ids", "prefix_lengths")


def resolve_attention_mode(mode):
    """`mode` in the API's vocabulary (`"ar"`, `"md"`, `"prefix"`).

    Example:
    >>> resolve_attention_mode("md")
    'md'
    """
    if isinstance(mode, str) and mode in DEPRECATED_ATTENTION_MODES:
        new = DEPRECATED_ATTENTION_MODES[mode]
        warnings.warn(
            f"mode={mode!r} is deprecated; use mode={new!r} (the same attention). "
            f"`DualLM` names modes {list(ATTENTION_MODES)} everywhere.",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    return check_choice("mode", mode, ATTENTION_MODES)


def unpack_features(inputs):
    """`{"token_ids", "document_ids"[, "prefix_lengths"]}` as int32 tensors from ids or a dict.

    Example:
    >>> import numpy as np
    >>> features = unpack_features(np.array([[1, 20, 21]]))
    >>> sorted(features), tuple(features["document_ids"].shape)
    (['document_ids', 'token_ids'], (1, 3))
    """
    if isinstance(inputs, dict):
        unknown = set(inputs) - set(FEATURE_NAMES)
        if "token_ids" not in inputs or unknown:
            raise ValueError(
                "DualLM inputs must be token ids or a dict with `token_ids` and optional "
                f"`document_ids` / `prefix_lengths`; received keys {sorted(inputs)}."
            )
        features = dict(inputs)
    else:
        features = {"token_ids": inputs}
    token_ids = ops.convert_to_tensor(features["token_ids"])
    if len(token_ids.shape) != 2:
        raise ValueError(
            "`token_ids` must have shape [batch, length]; received shape "
            f"{tuple(token_ids.shape)}."
        )
    if "int" not in str(token_ids.dtype):
        raise TypeError(f"`token_ids` must be integers; received dtype {token_ids.dtype}.")
    features["token_ids"] = ops.cast(token_ids, "int32")
    document_ids = features.get("document_ids")
    if document_ids is None:
        features["document_ids"] = ops.zeros_like(features["token_ids"])
    else:
        features["document_ids"] = ops.cast(document_ids, "int32")
    return features


def resolve_special_token_ids(tokenizer, vocabulary_size, **explicit):
    """Special ids: explicit ones, else the tokenizer's, else the reference layout.

    Example:
    >>> resolve_special_token_ids(None, 64, mask_token_id=5)["mask_token_id"]
    5
    """
    resolved = {}
    for name, default in DEFAULT_SPECIAL_TOKEN_IDS.items():
        value = explicit.get(name)
        if value is None and tokenizer is not None:
            value = getattr(tokenizer, name, None)
        resolved[name] = check_int(name, default if value is None else value, minimum=0)
        if resolved[name] >= vocabulary_size:
            raise ValueError(
                f"`{name}`={resolved[name]} is not a valid id for a vocabulary of "
                f"{vocabulary_size} tokens (ids 0..{vocabulary_size - 1})."
            )
    if len(set(resolved.values())) != len(resolved):
        raise ValueError(f"Special token ids must be distinct; received {resolved}.")
    return resolved

