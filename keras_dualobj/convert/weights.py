"""Reference state dicts <-> `DualBackbone` weights.

The reference (ltgoslo/dual-language-models, `dual_language_models/model/model.py`)
stores every linear map as a PyTorch `[out, in]` matrix: q, k and v as three
`[hidden, hidden]` matrices (`qkv_proj.weights.0/1/2`), the SwiGLU up-projection
as two `[intermediate, hidden]` ones (`up_proj.weights.0` the value half,
`.1` the gate passed through SiLU). Our kernels are `[in, out]`, the attention
ones split by head (`[hidden, heads, head_dim]`, `[heads, head_dim, hidden]`).
"""

import keras
import numpy as np

from keras_dualobj.convert.reference_config import backbone_arguments
from keras_dualobj.convert.reference_config import check_reference_config

# Name prefixes added by torch.compile, wrappers and DDP.
STRIPPED_PREFIXES = ("_orig_mod.", "model.", "module.")


def strip_prefixes(name):
    """`name` without leading `_orig_mod.` / `model.` / `module.` prefixes.

    Example:
    >>> strip_prefixes("_orig_mod.embedding.word_embedding.weight")
    'embedding.word_embedding.weight'
    """
    stripped = True
    while stripped:
        stripped = False
        for prefix in STRIPPED_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix):], True
    return name


def reference_shapes(config):
    """`{reference parameter name: shape}` of the reference model for `config`.

    Example:
    >>> config = {"vocab_size": 300, "hidden_size": 16, "d_h": 8,
    ...           "num_attention_heads": 2, "intermediate_size": 24, "num_layers": 1,
    ...           "max_sequence_length": 64, "rope_theta": 10000, "norm_eps": 1e-7,
    ...           "tie_weights": False, "attention_pre_norm_affine": False,
    ...           "feed_forward_pre_norm_affine": True, "classifier_pre_norm_affine": True}
    >>> reference_shapes(config)["encoder.layers.0.mlp.up_proj.weights.1"]
    (24, 16)
    """
    config = check_reference_config(config)
    hidden, vocabulary = config["hidden_size"], config["vocab_size"]
    intermediate = config["intermediate_size"]
    shapes = {"embedding.word_embedding.weight": (vocabulary, hidden)}
    for i in range(config["num_layers"]):
        layer = f"encoder.layers.{i}"
        if config["attention_pre_norm_affine"]:
            shapes[f"{layer}.attention.pre_norm.weight"] = (hidden,)
        for j in range(3):
            shapes[f"{layer}.attention.qkv_proj.weights.{j}"] = (hidden, hidden)
        shapes[f"{layer}.attention.out_proj.weight"] = (hidden, hidden)
        if config["feed_forward_pre_norm_affine"]:
            shapes[f"{layer}.mlp.pre_norm.weight"] = (hidden,)
        for j in range(2):
            shapes[f"{layer}.mlp.up_proj.weights.{j}"] = (intermediate, hidden)
        shapes[f"{layer}.mlp.down_proj.weight"] = (hidden, intermediate)
    if config["classifier_pre_norm_affine"]:
        shapes["classifier.pre_norm.weight"] = (hidden,)
    shapes["classifier.projection.weight"] = (hidden, hidden)
    shapes["classifier.emb2vocab.weight"] = (vocabulary, hidden)
    shapes["classifier.emb2vocab.bias"] = (vocabulary,)
    return shapes


def _to_numpy(name, value):
    if hasattr(value, "detach") and hasattr(value, "float"):  # a torch tensor
        return value.detach().cpu().float().numpy()
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return np.asarray(value, dtype="float32")
    raise TypeError(
        f"State dict entry {name!r} must be a NumPy array or a torch tensor; received "
        f"{type(value).__name__}."
    )


def _checked_state_dict(state_dict, config):
    """Prefix-free names -> float32 arrays, every shape checked, all problems at once."""
    if not hasattr(state_dict, "items"):
        raise TypeError(
            "`state_dict` must map reference parameter names to arrays; received "
            f"{type(state_dict).__name__}."
        )
    arrays = {}
    for name, value in state_dict.items():
        arrays[strip_prefixes(str(name))] = _to_numpy(name, value)
    expected = reference_shapes(config)
    optional = set()
    if config["tie_weights"]:
        # A tied torch model lists the shared matrix under both names; either is fine.
        optional.add("classifier.emb2vocab.weight")
    problems = []
    for name, shape in expected.items():
        if name not in arrays:
            if name not in optional:
                problems.append(f"missing tensor {name!r} (expected shape {shape})")
        elif arrays[name].shape != shape:
            problems.append(
                f"tensor {name!r} has shape {arrays[name].shape}, expected shape {shape}"
            )
    for name in sorted(set(arrays) - set(expected)):
        problems.append(
            f"unexpected tensor {name!r} of shape {arrays[name].shape} (not in the "
            "reference model for this config)"
        )
    if problems:
        raise ValueError("The state dict does not match the config: " + "; ".join(problems) + ".")
    if config["tie_weights"] and "classifier.emb2vocab.weight" in arrays:
        if not np.array_equal(
            arrays["classifier.emb2vocab.weight"], arrays["embedding.word_embedding.weight"]
        ):
            raise ValueError(
                "The config ties the weights (tie_weights=true) but "
                "'classifier.emb2vocab.weight' differs from 'embedding.word_embedding.weight'."
            )
    return arrays


def _variable_map(backbone):
    """`{reference name: (keras variable, to_keras, to_reference)}`."""
    heads, head_dim, hidden = backbone.num_heads, backbone.head_dim, backbone.hidden_dim

    def transpose(array):
        return np.ascontiguousarray(array.T)

    def identity(array):
        return array

    def split_input_heads(array):  # [h_out, h_in] -> [h_in, heads, head_dim]
        return array.T.reshape(hidden, heads, head_dim)

    def merge_input_heads(array):
        return np.ascontiguousarray(array.reshape(hidden, heads * head_dim).T)

    def split_output_heads(array):  # [h_out, heads*head_dim] -> [heads, head_dim, h_out]
        return array.T.reshape(heads, head_dim, hidden)

    def merge_output_heads(array):
        return np.ascontiguousarray(array.reshape(heads * head_dim, hidden).T)

    embedding = backbone.token_embedding
    mapping = {"embedding.word_embedding.weight": (embedding.embeddings, identity, identity)}
    for i, block in enumerate(backbone.transformer_layers):
        layer = f"encoder.layers.{i}"
        attention, feed_forward = block.attention, block.feed_forward
        if backbone.attention_norm_affine:
            mapping[f"{layer}.attention.pre_norm.weight"] = (
                block.attention_norm.scale, identity, identity)
        for j, dense in enumerate((attention.query_dense, attention.key_dense,
                                   attention.value_dense)):
            mapping[f"{layer}.attention.qkv_proj.weights.{j}"] = (
                dense.kernel, split_input_heads, merge_input_heads)
        mapping[f"{layer}.attention.out_proj.weight"] = (
            attention.output_dense.kernel, split_output_heads, merge_output_heads)
        if backbone.feed_forward_norm_affine:
            mapping[f"{layer}.mlp.pre_norm.weight"] = (
                block.feed_forward_norm.scale, identity, identity)
        mapping[f"{layer}.mlp.up_proj.weights.0"] = (
            feed_forward.up_dense.kernel, transpose, transpose)
        mapping[f"{layer}.mlp.up_proj.weights.1"] = (
            feed_forward.gate_dense.kernel, transpose, transpose)
        mapping[f"{layer}.mlp.down_proj.weight"] = (
            feed_forward.down_dense.kernel, transpose, transpose)
    if backbone.head_norm_affine:
        mapping["classifier.pre_norm.weight"] = (backbone.final_norm.scale, identity, identity)
    mapping["classifier.projection.weight"] = (
        embedding.projection_dense.kernel, transpose, transpose)
    if not backbone.tie_word_embeddings:
        mapping["classifier.emb2vocab.weight"] = (
            embedding.reverse_embeddings, transpose, transpose)
    mapping["classifier.emb2vocab.bias"] = (embedding.output_bias, identity, identity)
    return mapping


def from_reference(state_dict, config, dtype=None):
    """A `DualBackbone` holding the reference model's weights.

    Its causal (`prefix_lengths = 0`) and bidirectional (`prefix_lengths >= length`)
    outputs, mapped to logits by `token_embedding(hidden, reverse=True)`, equal the
    reference model's for the same weights and attention mode.

    Args:
        state_dict: dict mapping reference parameter names (with or without the
            `_orig_mod.` / `model.` prefixes) to NumPy arrays or torch tensors.
        config: dict in the reference's JSON layout (`hidden_size`, `d_h`,
            `num_attention_heads`, `intermediate_size`, `rope_theta`, `norm_eps`,
            `tie_weights`, ...; see `REQUIRED_KEYS`).
        dtype: the backbone's dtype policy (default: Keras' float type).

    Returns:
        A `DualBackbone` with the reference head and norms.

    Raises:
        ValueError: naming every missing, unexpected or wrongly shaped tensor with
            the expected shape, or a missing config key.

    Example:
    >>> import numpy as np
    >>> config = {"vocab_size": 300, "hidden_size": 16, "d_h": 8,
    ...           "num_attention_heads": 2, "intermediate_size": 24, "num_layers": 1,
    ...           "max_sequence_length": 64, "rope_theta": 10000, "norm_eps": 1e-7,
    ...           "tie_weights": False, "attention_pre_norm_affine": True,
    ...           "feed_forward_pre_norm_affine": True, "classifier_pre_norm_affine": True}
    >>> rng = np.random.default_rng(0)
    >>> state_dict = {name: rng.normal(size=shape).astype("float32")
    ...               for name, shape in reference_shapes(config).items()}
    >>> backbone = from_reference(state_dict, config)
    >>> all(np.array_equal(a, state_dict[n]) for n, a in to_reference(backbone).items())
    True
    """
    config = check_reference_config(config)
    arrays = _checked_state_dict(state_dict, config)
    from keras_dualobj.models import DualBackbone

    backbone = DualBackbone(**backbone_arguments(config), dtype=dtype)
    for name, (variable, to_keras, _) in _variable_map(backbone).items():
        # assign() casts to the variable's dtype (float32, bfloat16, ...).
        variable.assign(to_keras(arrays[name]))
    return backbone


def to_reference(backbone):
    """The reference state dict (`{name: float32 NumPy array}`) of a `DualBackbone`.

    The inverse of `from_reference`: the reference code loads it with
    `model.load_state_dict({k: torch.from_numpy(v) for k, v in ...})` into a model
    built from `reference_config(backbone)`. A tied backbone lists the shared matrix
    under both names, as a tied torch model does.

    Example:
    >>> from keras_dualobj.models import DualBackbone
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                         hidden_dim=16, intermediate_dim=32,
    ...                         head_projection=True, head_bias=True)
    >>> to_reference(backbone)["encoder.layers.0.attention.qkv_proj.weights.0"].shape
    (16, 16)
    """
    from keras_dualobj.convert.reference_config import reference_config

    config = reference_config(backbone)  # refuses a head the reference lacks
    state_dict = {}
    for name, (variable, _, to_reference_layout) in _variable_map(backbone).items():
        state_dict[name] = to_reference_layout(
            np.asarray(keras.ops.convert_to_numpy(variable.value), dtype="float32")
        )
    if config["tie_weights"]:
        state_dict["classifier.emb2vocab.weight"] = state_dict["embedding.word_embedding.weight"]
    return {name: state_dict[name] for name in reference_shapes(config)}
