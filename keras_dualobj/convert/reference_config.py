"""The reference implementation's JSON config <-> `DualBackbone` arguments."""

from keras_dualobj.models.backbone_arguments import LLAMA_FAMILY_DEFAULTS

# Keys the reference model reads from its config (ltgoslo/dual-language-models,
# configs/large.json); `model`, `dataset_type` and training keys are ignored.
REQUIRED_KEYS = (
    "vocab_size",
    "hidden_size",
    "d_h",
    "num_attention_heads",
    "intermediate_size",
    "num_layers",
    "max_sequence_length",
    "rope_theta",
    "norm_eps",
    "tie_weights",
    "attention_pre_norm_affine",
    "feed_forward_pre_norm_affine",
    "classifier_pre_norm_affine",
)

_INTEGER_KEYS = REQUIRED_KEYS[:7]
_BOOLEAN_KEYS = REQUIRED_KEYS[9:]


def check_reference_config(config):
    """Validates a reference config dict; returns it.

    Raises `ValueError` naming a missing key or an inconsistent value (the head
    width `d_h` times `num_attention_heads` must equal `hidden_size`, as the
    reference reshapes its `hidden_size` query into heads of `d_h`).

    Example:
    >>> check_reference_config({"hidden_size": 64})
    Traceback (most recent call last):
    ...
    ValueError: The reference config lacks the key 'vocab_size' ...
    """
    if not isinstance(config, dict):
        raise TypeError(
            "`config` must be a dict in the reference's JSON layout; received "
            f"{type(config).__name__}."
        )
    for key in REQUIRED_KEYS:
        if key not in config:
            raise ValueError(
                f"The reference config lacks the key {key!r} (required keys: "
                f"{list(REQUIRED_KEYS)}); received keys {sorted(config)}."
            )
    for key in _INTEGER_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Reference config key {key!r} must be a positive integer; received {value!r}."
            )
    for key in _BOOLEAN_KEYS:
        if not isinstance(config[key], bool):
            raise ValueError(
                f"Reference config key {key!r} must be true or false; received {config[key]!r}."
            )
    if config["d_h"] * config["num_attention_heads"] != config["hidden_size"]:
        raise ValueError(
            "The reference config needs d_h * num_attention_heads == hidden_size; received "
            f"d_h={config['d_h']}, num_attention_heads={config['num_attention_heads']}, "
            f"hidden_size={config['hidden_size']}."
        )
    return config


def backbone_arguments(config):
    """`DualBackbone` keyword arguments for a reference config.

    Example:
    >>> import json
    >>> config = {"vocab_size": 51200, "hidden_size": 1024, "d_h": 64,
    ...           "num_attention_heads": 16, "intermediate_size": 3554, "num_layers": 24,
    ...           "max_sequence_length": 2048, "rope_theta": 160000, "norm_eps": 1e-7,
    ...           "tie_weights": False, "attention_pre_norm_affine": True,
    ...           "feed_forward_pre_norm_affine": True, "classifier_pre_norm_affine": True}
    >>> arguments = backbone_arguments(config)
    >>> arguments["intermediate_dim"], arguments["head_projection"], arguments["head_bias"]
    (3554, True, True)
    """
    config = check_reference_config(config)
    return {
        "vocabulary_size": config["vocab_size"],
        "num_layers": config["num_layers"],
        "num_heads": config["num_attention_heads"],
        "hidden_dim": config["hidden_size"],
        "intermediate_dim": config["intermediate_size"],
        "max_sequence_length": config["max_sequence_length"],
        "rope_max_wavelength": config["rope_theta"],
        "layer_norm_epsilon": config["norm_eps"],
        "tie_word_embeddings": config["tie_weights"],
        "head_projection": True,
        "head_bias": True,
        "attention_norm_affine": config["attention_pre_norm_affine"],
        "feed_forward_norm_affine": config["feed_forward_pre_norm_affine"],
        "head_norm_affine": config["classifier_pre_norm_affine"],
        "initialization": "reference",
    }


def reference_config(backbone):
    """The reference JSON config that builds the same network as `backbone`.

    The backbone must have the reference head (`head_projection=True,
    head_bias=True`), the only head the reference implements.

    Example:
    >>> from keras_dualobj.models import DualBackbone
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                         hidden_dim=16, intermediate_dim=32,
    ...                         head_projection=True, head_bias=True)
    >>> reference_config(backbone)["d_h"]
    8
    """
    if not (backbone.head_projection and backbone.head_bias):
        raise ValueError(
            "The reference implementation always has the projection + GELU + biased head; "
            "this backbone has head_projection="
            f"{backbone.head_projection}, head_bias={backbone.head_bias} (both must be True)."
        )
    _check_paper_attention(backbone)
    return {
        "attention_pre_norm_affine": backbone.attention_norm_affine,
        "classifier_pre_norm_affine": backbone.head_norm_affine,
        "d_h": backbone.head_dim,
        "feed_forward_pre_norm_affine": backbone.feed_forward_norm_affine,
        "hidden_size": backbone.hidden_dim,
        "intermediate_size": backbone.intermediate_dim,
        "max_sequence_length": backbone.max_sequence_length,
        "norm_eps": backbone.layer_norm_epsilon,
        "num_attention_heads": backbone.num_heads,
        "num_layers": backbone.num_layers,
        "rope_theta": backbone.rope_max_wavelength,
        "vocab_size": backbone.vocabulary_size,
        "tie_weights": backbone.tie_word_embeddings,
    }


def _check_paper_attention(backbone):
    """Refuses the Llama-family options (`LLAMA_FAMILY_DEFAULTS` away from their
    defaults): the reference has full multi-head attention, no q/k/v bias and plain RoPE."""
    config = backbone.get_config()
    if config["num_key_value_heads"] == config["num_heads"]:
        config["num_key_value_heads"] = None  # every head its own keys and values
    options = {name: config[name] for name, default in LLAMA_FAMILY_DEFAULTS.items()
               if config[name] != default}
    if options:
        raise ValueError(
            "The reference implementation has none of the Llama-family options (full "
            "multi-head attention, no q/k/v bias, unscaled RoPE); this backbone sets "
            f"{options}. Convert it to keras-hub instead (`convert.to_keras_hub`)."
        )
