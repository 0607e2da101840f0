"""The 16 reserved token ids shared by every tokenizer and the model.

The reference recipe (DESIGN.md §1) reserves the first 16 ids of the
vocabulary: `<unk>`=0, `<s>`=1, `</s>`=2, `<pad>`=3, `<mask>`=4 and
`<reserved_5>` … `<reserved_15>`. Keeping the ids fixed across tokenizers means
a model trained with the byte tokenizer and one trained with BPE agree on what
id 4 (`<mask>`) means, and `DualLM`'s defaults need no tokenizer at all.

Example:

>>> from keras_dualobj.data import special_tokens
>>> special_tokens.MASK_TOKEN_ID
4
>>> special_tokens.SPECIAL_TOKENS[:5]
('<unk>', '<s>', '</s>', '<pad>', '<mask>')
"""

UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"

UNK_TOKEN_ID = 0
BOS_TOKEN_ID = 1
EOS_TOKEN_ID = 2
PAD_TOKEN_ID = 3
MASK_TOKEN_ID = 4

NUM_SPECIAL_TOKENS = 16

SPECIAL_TOKENS = (UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, MASK_TOKEN) + tuple(
    f"<reserved_{i}>" for i in range(5, NUM_SPECIAL_TOKENS)
)

# (attribute name on a tokenizer, token). Tokenizers expose `<name>` and
# `<name>_id`; `start_token`/`end_token` are keras-hub's names for `<s>`/`</s>`,
# kept as aliases so keras-hub samplers and preprocessors find them.
NAMED_SPECIAL_TOKENS = (
    ("unk_token", UNK_TOKEN),
    ("bos_token", BOS_TOKEN),
    ("start_token", BOS_TOKEN),
    ("eos_token", EOS_TOKEN),
    ("end_token", EOS_TOKEN),
    ("pad_token", PAD_TOKEN),
    ("mask_token", MASK_TOKEN),
)


def register_special_tokens(tokenizer):
    """Declares the named special tokens on a keras-hub `Tokenizer`.

    Sets `tokenizer.<name>` and `tokenizer.<name>_id` for every name in
    `NAMED_SPECIAL_TOKENS`, e.g. `tokenizer.mask_token_id`. keras-hub refreshes
    the `_id` attributes whenever the vocabulary changes.

    Args:
        tokenizer: a `keras_hub.tokenizers.Tokenizer`.

    Example:

    >>> from keras_dualobj.data import ByteTokenizer
    >>> ByteTokenizer().pad_token_id  # registered in the constructor
    3
    """
    for name, token in NAMED_SPECIAL_TOKENS:
        tokenizer._add_special_token(token, name)
