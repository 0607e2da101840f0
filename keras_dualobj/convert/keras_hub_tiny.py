"""Tiny random keras-hub Llama 3 / Qwen 2 models with a byte-level tokenizer, offline.

Real presets need a download; these stand in for them in the tests, the guide and
the benchmarks. The tokenizer is the family's keras-hub class over the 256 GPT-2
byte symbols, a few merges and the family's special tokens, so it runs the same
code as a real checkpoint's tokenizer.
"""

import keras_hub
from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

from keras_dualobj.convert.keras_hub_families import FAMILIES

SPECIAL_TOKENS = {
    "llama3": ("<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
               "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "qwen": ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>"),
}
# Merges of frequent English pairs ("Ġ" is the byte-level space).
MERGES = ("Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ s", "r e", "Ġ w")


def tiny_tokenizer(family="llama3"):
    """The family's keras-hub tokenizer over bytes, 10 merges and its special tokens.

    Example:
    >>> tokenizer = tiny_tokenizer("llama3")
    >>> tokenizer.vocabulary_size(), tokenizer.detokenize(tokenizer("the cat"))
    (272, 'the cat')
    """
    _, symbols = bytes_to_unicode()
    tokens = list(symbols) + ["".join(merge.split()) for merge in MERGES]
    tokens += list(SPECIAL_TOKENS[family])
    vocabulary = {token: index for index, token in enumerate(tokens)}
    return FAMILIES[family].tokenizer_class(vocabulary=vocabulary, merges=list(MERGES))


def tiny_keras_hub_model(family="llama3", num_layers=2, hidden_dim=64, num_query_heads=4,
                         num_key_value_heads=2, intermediate_dim=128,
                         tie_word_embeddings=False, sequence_length=64, **backbone_kwargs):
    """A random keras-hub `CausalLM` of `family` with `tiny_tokenizer`.

    Llama 3 models get Llama 3.1's RoPE scaling over a 16-token "pretraining
    length", so that the scaling shows at these lengths; `backbone_kwargs` override
    any backbone argument.

    Example:
    >>> task = tiny_keras_hub_model("qwen", num_layers=1, hidden_dim=16, intermediate_dim=32)
    >>> type(task).__name__, task.backbone.num_key_value_heads
    ('QwenCausalLM', 2)
    """
    tokenizer = tiny_tokenizer(family)
    arguments = dict(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=num_layers,
        num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
        hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
        tie_word_embeddings=tie_word_embeddings,
    )
    if family == "llama3":
        arguments.update(
            rope_max_wavelength=500000, rope_frequency_adjustment_factor=8.0,
            rope_low_freq_factor=1.0, rope_high_freq_factor=4.0,
            rope_pretraining_sequence_length=16,
        )
    arguments.update(backbone_kwargs)
    spec = FAMILIES[family]
    backbone = spec.backbone_classes[0](**arguments)
    preprocessor = spec.preprocessor_class(tokenizer=tokenizer, sequence_length=sequence_length)
    return spec.task_class(backbone=backbone, preprocessor=preprocessor)
