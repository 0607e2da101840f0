"""`DualBackbone`'s constructor arguments: their checks and the Llama-family options.

The options that hold keras-hub's Llama 3 / Mistral / Qwen 2 checkpoints
(`LLAMA_FAMILY_DEFAULTS`) leave the paper's architecture unchanged at their defaults.
"""

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

# The options beyond the paper's architecture, with the defaults that switch them off.
LLAMA_FAMILY_DEFAULTS = {
    "num_key_value_heads": None,
    "query_key_value_bias": False,
    "rope_scaling_factor": 1.0,
    "rope_frequency_adjustment_factor": None,
    "rope_low_freq_factor": None,
    "rope_high_freq_factor": None,
    "rope_pretraining_sequence_length": None,
}
# Backbone argument -> `rope_inverse_frequencies` argument.
ROPE_SCALING_ARGUMENTS = {
    "rope_scaling_factor": "scaling_factor",
    "rope_frequency_adjustment_factor": "frequency_adjustment_factor",
    "rope_low_freq_factor": "low_freq_factor",
    "rope_high_freq_factor": "high_freq_factor",
    "rope_pretraining_sequence_length": "pretraining_sequence_length",
}


def rope_scaling_of(arguments):
    """The RoPE scaling dict of the layers from backbone arguments, `None` if none.

    Example:
    >>> rope_scaling_of({"rope_scaling_factor": 2.0, "rope_low_freq_factor": None})
    {'scaling_factor': 2.0}
    >>> rope_scaling_of({"rope_scaling_factor": 1.0}) is None
    True
    """
    scaling = {
        ROPE_SCALING_ARGUMENTS[name]: arguments[name]
        for name, default in LLAMA_FAMILY_DEFAULTS.items()
        if name in ROPE_SCALING_ARGUMENTS and arguments.get(name, default) != default
    }
    return scaling or None


def check_backbone_arguments(arguments):
    """Validates `DualBackbone`'s constructor arguments (a dict of them)."""
    vocabulary_size = arguments["vocabulary_size"]
    num_layers = arguments["num_layers"]
    num_heads = arguments["num_heads"]
    hidden_dim = arguments["hidden_dim"]
    intermediate_dim = arguments["intermediate_dim"]
    max_sequence_length = arguments["max_sequence_length"]
    rope_max_wavelength = arguments["rope_max_wavelength"]
    layer_norm_epsilon = arguments["layer_norm_epsilon"]
    dropout = arguments["dropout"]
    initializer_range = arguments["initializer_range"]
    initialization = arguments["initialization"]
    check_int("vocabulary_size", vocabulary_size, minimum=2)
    check_int("num_layers", num_layers, minimum=1)
    check_int("num_heads", num_heads, minimum=1)
    check_int("hidden_dim", hidden_dim, minimum=2)
    check_int("intermediate_dim", intermediate_dim, minimum=1)
    check_int("max_sequence_length", max_sequence_length, minimum=2)
    if hidden_dim % num_heads:
        raise ValueError(
            f"`num_heads` must divide `hidden_dim`; received num_heads={num_heads}, "
            f"hidden_dim={hidden_dim}."
        )
    head_dim = hidden_dim // num_heads
    if head_dim % 2:
        raise ValueError(
            "Rotary embeddings need an even head width `hidden_dim / num_heads`; "
            f"received hidden_dim={hidden_dim}, num_heads={num_heads} "
            f"(head width {head_dim})."
        )
    check_float("rope_max_wavelength", rope_max_wavelength, minimum=1.0)
    check_float("layer_norm_epsilon", layer_norm_epsilon, minimum=0.0)
    check_float("dropout", dropout, minimum=0.0, maximum=1.0, include_maximum=False)
    check_float("initializer_range", initializer_range, minimum=0.0)
    flags = ("tie_word_embeddings", "head_projection", "head_bias",
             "attention_norm_affine", "feed_forward_norm_affine", "head_norm_affine",
             "query_key_value_bias")
    for flag in flags:
        value = arguments[flag]
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False; received {flag}={value!r}.")
    check_choice("initialization", initialization, ("normal", "reference"))
    _check_llama_family_arguments(arguments)


def _check_llama_family_arguments(arguments):
    num_heads = arguments["num_heads"]
    num_key_value_heads = arguments["num_key_value_heads"]
    if num_key_value_heads is not None:
        check_int("num_key_value_heads", num_key_value_heads, minimum=1)
        if num_heads % num_key_value_heads:
            raise ValueError(
                "`num_key_value_heads` must divide `num_heads` (each key/value head "
                f"serves a group of query heads); received num_key_value_heads="
                f"{num_key_value_heads}, num_heads={num_heads}."
            )
    check_float("rope_scaling_factor", arguments["rope_scaling_factor"], minimum=1e-6)
    llama3 = [name for name in ROPE_SCALING_ARGUMENTS if name != "rope_scaling_factor"]
    given = [name for name in llama3 if arguments[name] is not None]
    if given and len(given) != len(llama3):
        raise ValueError(
            f"Llama 3 RoPE scaling needs all of {llama3} or none; received "
            f"{ {name: arguments[name] for name in llama3} }."
        )
    for name in given:
        check_float(name, arguments[name], minimum=1e-6)
    if given and arguments["rope_low_freq_factor"] >= arguments["rope_high_freq_factor"]:
        raise ValueError(
            "`rope_low_freq_factor` must be below `rope_high_freq_factor`; received "
            f"{arguments['rope_low_freq_factor']} and {arguments['rope_high_freq_factor']}."
        )
