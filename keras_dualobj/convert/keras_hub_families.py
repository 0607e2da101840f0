"""The keras-hub model families a `DualBackbone` can hold, and their configs both ways.

A family names its keras-hub classes and maps a keras-hub backbone's config onto
`DualBackbone`'s arguments (`dual_arguments`) and back (`hub_arguments`). Llama 3
(and Llama 2, the same block) and Qwen 2 / 2.5 are supported: pre-norm RMSNorm,
RoPE, SwiGLU, grouped-query attention; Qwen adds q/k/v biases. Mistral's sliding
window and Gemma's block have no counterpart in `DualBackbone`.
"""

import keras_hub

LLAMA3_ROPE_ARGUMENTS = (
    "rope_frequency_adjustment_factor",
    "rope_low_freq_factor",
    "rope_high_freq_factor",
    "rope_pretraining_sequence_length",
)


class Family:
    """One keras-hub family: its classes, config mapping and special tokens.

    Args:
        name: str, as `to_keras_hub(family=...)` takes it.
        backbone_classes: keras-hub backbone classes read by `from_keras_hub`
            (the first is the one `to_keras_hub` builds).
        task_class, preprocessor_class, tokenizer_class: keras-hub classes.
        bos_tokens, eos_tokens, mask_tokens: candidate token strings, first present
            in the vocabulary wins, for the special ids a keras-hub tokenizer lacks.
    """

    def __init__(self, name, backbone_classes, task_class, preprocessor_class,
                 tokenizer_class, bos_tokens, eos_tokens, mask_tokens):
        self.name = name
        self.backbone_classes = backbone_classes
        self.task_class = task_class
        self.preprocessor_class = preprocessor_class
        self.tokenizer_class = tokenizer_class
        self.bos_tokens = bos_tokens
        self.eos_tokens = eos_tokens
        self.mask_tokens = mask_tokens

    def __repr__(self):
        return f"Family({self.name!r})"


# Masked diffusion needs a `<mask>` id: a reserved token the model never saw in text.
FAMILIES = {
    "llama3": Family(
        "llama3",
        (keras_hub.models.Llama3Backbone, keras_hub.models.LlamaBackbone),
        keras_hub.models.Llama3CausalLM,
        keras_hub.models.Llama3CausalLMPreprocessor,
        keras_hub.models.Llama3Tokenizer,
        bos_tokens=("<|begin_of_text|>", "<s>"),
        eos_tokens=("<|end_of_text|>", "</s>"),
        mask_tokens=("<mask>", "<|mask|>", "<|reserved_special_token_0|>"),
    ),
    # Qwen has no BOS; its pretraining documents follow `<|endoftext|>`, which is
    # therefore the BOS here, and `<|im_end|>` the EOS (ids must differ).
    "qwen": Family(
        "qwen",
        (keras_hub.models.QwenBackbone,),
        keras_hub.models.QwenCausalLM,
        keras_hub.models.QwenCausalLMPreprocessor,
        keras_hub.models.QwenTokenizer,
        bos_tokens=("<|endoftext|>",),
        eos_tokens=("<|im_end|>",),
        mask_tokens=("<mask>", "<|mask|>", "<|fim_pad|>"),
    ),
}


def family_of_hub_backbone(backbone):
    """The `Family` of a keras-hub backbone instance; raises for any other."""
    for family in FAMILIES.values():
        if type(backbone) in family.backbone_classes:
            return family
    supported = [cls.__name__ for f in FAMILIES.values() for cls in f.backbone_classes]
    raise ValueError(
        f"No conversion for a keras-hub {type(backbone).__name__}; supported are "
        f"{supported}."
    )


def dual_arguments(backbone, family):
    """`DualBackbone` arguments holding the keras-hub `backbone` of `family`."""
    arguments = {
        "vocabulary_size": backbone.vocabulary_size,
        "num_layers": backbone.num_layers,
        "num_heads": backbone.num_query_heads,
        "hidden_dim": backbone.hidden_dim,
        "intermediate_dim": backbone.intermediate_dim,
        "num_key_value_heads": backbone.num_key_value_heads,
        "rope_max_wavelength": float(backbone.rope_max_wavelength),
        "layer_norm_epsilon": float(backbone.layer_norm_epsilon),
        "dropout": float(backbone.dropout),
        # The layer's flag: Llama's get_config leaves `tie_word_embeddings` out.
        "tie_word_embeddings": bool(backbone.token_embedding.tie_weights),
        "dtype": backbone.dtype_policy.name,
    }
    if family.name == "llama3":
        # keras-hub's LlamaRotaryEmbedding ignores `rope_position_scaling_factor`.
        scaled = backbone.rope_frequency_adjustment_factor is not None
        for name in LLAMA3_ROPE_ARGUMENTS:
            arguments[name] = getattr(backbone, name)
        arguments["max_sequence_length"] = 131072 if scaled else 8192
    else:
        if backbone.use_sliding_window_attention:
            raise ValueError(
                "This Qwen backbone uses sliding-window attention "
                "(use_sliding_window_attention=True), which DualBackbone does not have."
            )
        arguments["query_key_value_bias"] = True
        arguments["rope_scaling_factor"] = float(backbone.rope_scaling_factor)
        arguments["max_sequence_length"] = 32768
    return arguments


def infer_family(dual_backbone):
    """`"qwen"` for a backbone with q/k/v biases, else `"llama3"`.

    Example:
    >>> from keras_dualobj.models import DualBackbone
    >>> infer_family(DualBackbone(64, 1, 2, 16, 32, query_key_value_bias=True))
    'qwen'
    """
    return "qwen" if dual_backbone.query_key_value_bias else "llama3"


def hub_arguments(dual_backbone, family):
    """keras-hub backbone arguments for `dual_backbone`; raises for what it cannot hold."""
    unsupported = {
        "head_projection": dual_backbone.head_projection,
        "head_bias": dual_backbone.head_bias,
        "attention_norm_affine": not dual_backbone.attention_norm_affine,
        "feed_forward_norm_affine": not dual_backbone.feed_forward_norm_affine,
        "head_norm_affine": not dual_backbone.head_norm_affine,
        "query_key_value_bias": dual_backbone.query_key_value_bias != (family.name == "qwen"),
    }
    if family.name == "llama3":
        unsupported["rope_scaling_factor"] = dual_backbone.rope_scaling_factor != 1.0
    else:
        unsupported.update({name: getattr(dual_backbone, name) is not None
                            for name in LLAMA3_ROPE_ARGUMENTS})
    bad = sorted(name for name, is_bad in unsupported.items() if is_bad)
    if bad:
        raise ValueError(
            f"A keras-hub {family.backbone_classes[0].__name__} cannot hold this "
            f"DualBackbone: its {bad} differ from that family's architecture."
        )
    arguments = {
        "vocabulary_size": dual_backbone.vocabulary_size,
        "num_layers": dual_backbone.num_layers,
        "num_query_heads": dual_backbone.num_heads,
        "num_key_value_heads": dual_backbone.key_value_heads,
        "hidden_dim": dual_backbone.hidden_dim,
        "intermediate_dim": dual_backbone.intermediate_dim,
        "rope_max_wavelength": dual_backbone.rope_max_wavelength,
        "layer_norm_epsilon": dual_backbone.layer_norm_epsilon,
        "dropout": dual_backbone.dropout,
        "tie_word_embeddings": dual_backbone.tie_word_embeddings,
        "dtype": dual_backbone.dtype_policy.name,
    }
    if family.name == "llama3":
        arguments.update({name: getattr(dual_backbone, name) for name in LLAMA3_ROPE_ARGUMENTS})
    else:
        arguments["rope_scaling_factor"] = dual_backbone.rope_scaling_factor
    return arguments

