"""Start the dual objective from a keras-hub model, and hand the result back.

`from_keras_hub` turns a keras-hub Llama 3 or Qwen 2 model (a backbone, a
`CausalLM` task, or a preset: a Kaggle / `hf://` handle or a local folder saved by
`save_to_preset`) into a `DualLM` whose causal face computes the keras-hub model's
logits, with its tokenizer as the preprocessor's; `to_keras_hub` builds the
keras-hub backbone (or `CausalLM`, given a `DualLM` with a keras-hub tokenizer) of
the same architecture and weights, which keras-hub exports to Hugging Face
Transformers (`export_to_transformers`).
"""

import keras
import keras_hub
import numpy as np

from keras_dualobj.convert.keras_hub_families import FAMILIES
from keras_dualobj.convert.keras_hub_families import dual_arguments
from keras_dualobj.convert.keras_hub_families import family_of_hub_backbone
from keras_dualobj.convert.keras_hub_families import hub_arguments
from keras_dualobj.convert.keras_hub_families import infer_family
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM

# keras-hub's CausalLMPreprocessor default, the row length when nothing says otherwise.
DEFAULT_SEQUENCE_LENGTH = 1024


def variable_pairs(hub_backbone, dual_backbone):
    """`(keras-hub variable, DualBackbone variable)` for every weight, in order.

    The two blocks store each matrix in the same layout (`[hidden, heads, head_dim]`
    projections, `[heads, head_dim, hidden]` output, `[hidden, intermediate]`
    feed-forward), so the weights map one to one.
    """
    hub_embedding, embedding = hub_backbone.token_embedding, dual_backbone.token_embedding
    pairs = [(hub_embedding.embeddings, embedding.embeddings)]
    if not embedding.tie_weights:
        pairs.append((hub_embedding.reverse_embeddings, embedding.reverse_embeddings))
    for hub_block, block in zip(hub_backbone.transformer_layers, dual_backbone.transformer_layers):
        hub_attention, attention = hub_block._self_attention_layer, block.attention
        pairs.append((hub_block._self_attention_layernorm.scale, block.attention_norm.scale))
        for hub_dense, dense in (
            (hub_attention._query_dense, attention.query_dense),
            (hub_attention._key_dense, attention.key_dense),
            (hub_attention._value_dense, attention.value_dense),
            (hub_attention._output_dense, attention.output_dense),
        ):
            pairs.append((hub_dense.kernel, dense.kernel))
            if dense.bias is not None:
                pairs.append((hub_dense.bias, dense.bias))
        feed_forward = block.feed_forward
        pairs += [
            (hub_block._feedforward_layernorm.scale, block.feed_forward_norm.scale),
            (hub_block._feedforward_gate_dense.kernel, feed_forward.gate_dense.kernel),
            (hub_block._feedforward_intermediate_dense.kernel, feed_forward.up_dense.kernel),
            (hub_block._feedforward_output_dense.kernel, feed_forward.down_dense.kernel),
        ]
    pairs.append((hub_backbone.layer_norm.scale, dual_backbone.final_norm.scale))
    return pairs


def _copy(pairs, to_dual):
    for hub_variable, variable in pairs:
        source, target = (hub_variable, variable) if to_dual else (variable, hub_variable)
        if tuple(source.shape) != tuple(target.shape):
            raise ValueError(
                f"Weight {source.path} has shape {tuple(source.shape)}, its counterpart "
                f"{target.path} {tuple(target.shape)}."
            )
        target.assign(keras.ops.convert_to_numpy(source))


def special_token_ids(tokenizer, family, **explicit):
    """The `DualLM` special ids for a keras-hub tokenizer of `family`.

    Explicit ids win; else the family's candidate tokens (`Family.bos_tokens`,
    ...), the first in the vocabulary; else the tokenizer's `start_token_id` /
    `end_token_id` / `pad_token_id`. The mask id has no keras-hub counterpart: a
    reserved token (`<|reserved_special_token_0|>` in Llama 3, `<|fim_pad|>` in
    Qwen 2), or pass `mask_token_id`.
    """
    vocabulary = set(tokenizer.get_vocabulary())
    tokenizer_ids = {
        "bos_token_id": getattr(tokenizer, "start_token_id", None),
        "eos_token_id": getattr(tokenizer, "end_token_id", None),
        "pad_token_id": getattr(tokenizer, "pad_token_id", None),
        "mask_token_id": None,
    }
    candidates = {"bos_token_id": family.bos_tokens, "eos_token_id": family.eos_tokens,
                  "mask_token_id": family.mask_tokens}
    resolved = {}
    for name, value in tokenizer_ids.items():
        present = [tokenizer.token_to_id(token) for token in candidates.get(name, ())
                   if token in vocabulary]
        for choice in (explicit.get(name), *present[:1], value):
            if choice is not None:
                value = choice
                break
        if value is None:
            raise ValueError(
                f"The tokenizer has no token for `{name}` (looked for "
                f"{list(candidates.get(name, ()))}); pass {name}=<an id of a token the "
                "model never sees in text>."
            )
        resolved[name] = int(value)
    return resolved


def _from_preset(cls, preset):
    try:
        return cls.from_preset(preset)
    except ValueError as error:
        if "reverse_embeddings" not in str(error):
            raise
    # keras-hub 0.32's Llama `get_config` leaves `tie_word_embeddings` out, so the
    # preset of a tied model (Llama 3.2 1B/3B) reloads untied and misses a matrix.
    return cls.from_preset(preset, tie_word_embeddings=True)


def _load_preset(preset):
    """`(backbone, tokenizer or None, preprocessor or None)` of a keras-hub preset."""
    try:
        task = _from_preset(keras_hub.models.CausalLM, preset)
    except ValueError:  # a preset without a task or preprocessor
        backbone = _from_preset(keras_hub.models.Backbone, preset)
        try:
            tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        except (ValueError, FileNotFoundError):
            tokenizer = None
        return backbone, tokenizer, None
    return task.backbone, task.preprocessor.tokenizer, task.preprocessor


def from_keras_hub(model, tokenizer=None, sequence_length=None, ar_fraction=0.5,
                   bos_token_id=None, eos_token_id=None, pad_token_id=None,
                   mask_token_id=None, **dual_lm_kwargs):
    """A `DualLM` holding a keras-hub Llama 3 or Qwen 2 model, ready for `fit()`.

    Its causal face (`mode="ar"`, the default) computes the keras-hub model's logits
    (the same weights, block and RoPE; equal to float32 round-off), and its
    bidirectional face starts from the same weights, to be taught by the dual
    objective.

    Args:
        model: a keras-hub backbone (`Llama3Backbone`, `LlamaBackbone`,
            `QwenBackbone`), a `CausalLM` task holding one, or a preset: a Kaggle
            handle, an `hf://` path or a local folder (`save_to_preset`), loaded with
            keras-hub's `from_preset` (the handles need internet).
        tokenizer: the keras-hub tokenizer, if `model` does not carry one.
        sequence_length: row length of the preprocessor; default the task's
            preprocessor's, else 1024 (keras-hub's).
        ar_fraction: the AR share α of further training.
        bos_token_id, eos_token_id, pad_token_id, mask_token_id: override the ids
            of `special_token_ids` (with a tokenizer).
        **dual_lm_kwargs: passed to `DualLM` (`seed`, `z_loss_weight`, ...).

    Example:
    >>> import keras_hub, numpy as np
    >>> hub = keras_hub.models.Llama3Backbone(vocabulary_size=64, num_layers=1,
    ...     num_query_heads=4, num_key_value_heads=2, hidden_dim=16, intermediate_dim=32)
    >>> model = from_keras_hub(hub, ar_fraction=0.75)
    >>> model.backbone.num_key_value_heads, model.ar_fraction
    (2, 0.75)
    >>> float(causal_logits_error(model, hub, np.array([[1, 7, 9, 11]], "int32"))) < 1e-5
    True
    """
    preprocessor = None
    if isinstance(model, str):
        model, loaded_tokenizer, preprocessor = _load_preset(model)
        tokenizer = tokenizer or loaded_tokenizer
    elif isinstance(model, keras_hub.models.CausalLM):
        preprocessor = model.preprocessor
        if tokenizer is None and preprocessor is not None:
            tokenizer = preprocessor.tokenizer
        model = model.backbone
    if not isinstance(model, keras_hub.models.Backbone):
        raise TypeError(
            "`model` must be a keras-hub backbone, a keras-hub CausalLM or a preset "
            f"(a handle or folder); received {type(model).__name__}."
        )
    family = family_of_hub_backbone(model)
    backbone = DualBackbone(**dual_arguments(model, family))
    _copy(variable_pairs(model, backbone), to_dual=True)
    if tokenizer is None:
        ids = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                   pad_token_id=pad_token_id, mask_token_id=mask_token_id)
        return DualLM(backbone, ar_fraction=ar_fraction, **ids, **dual_lm_kwargs)
    ids = special_token_ids(tokenizer, family, bos_token_id=bos_token_id,
                            eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                            mask_token_id=mask_token_id)
    if sequence_length is None:
        sequence_length = getattr(preprocessor, "sequence_length", None) or DEFAULT_SEQUENCE_LENGTH
    from keras_dualobj.models import DualLMPreprocessor

    dual_preprocessor = DualLMPreprocessor(
        tokenizer, sequence_length=min(sequence_length, backbone.max_sequence_length), **ids
    )
    return DualLM(backbone, ar_fraction=ar_fraction, preprocessor=dual_preprocessor,
                  **ids, **dual_lm_kwargs)


def to_keras_hub(model, family=None):
    """The keras-hub model of `model`'s architecture and weights.

    Args:
        model: a `DualBackbone`, or a `DualLM`: then, if its tokenizer is the
            family's keras-hub tokenizer, a keras-hub `CausalLM` with that tokenizer
            (ready for `generate` and `export_to_transformers`), else the backbone.
        family: `"llama3"` or `"qwen"`; default: `"qwen"` for a backbone with q/k/v
            biases, else `"llama3"`.

    Returns:
        A `keras_hub.models.Llama3Backbone` / `QwenBackbone`, or the `CausalLM`.

    Example:
    >>> import numpy as np
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=4,
    ...     num_key_value_heads=2, hidden_dim=16, intermediate_dim=32)
    >>> hub = to_keras_hub(backbone)
    >>> type(hub).__name__, hub.num_key_value_heads
    ('Llama3Backbone', 2)
    """
    backbone = model.backbone if isinstance(model, DualLM) else model
    if not isinstance(backbone, DualBackbone):
        raise TypeError(
            f"`model` must be a DualBackbone or a DualLM; received {type(model).__name__}."
        )
    family = family or infer_family(backbone)
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; accepted are {sorted(FAMILIES)}.")
    family = FAMILIES[family]
    hub_backbone = family.backbone_classes[0](**hub_arguments(backbone, family))
    _copy(variable_pairs(hub_backbone, backbone), to_dual=False)
    tokenizer = model.tokenizer if isinstance(model, DualLM) else None
    if not isinstance(tokenizer, family.tokenizer_class):
        return hub_backbone
    preprocessor = family.preprocessor_class(
        tokenizer=tokenizer, sequence_length=model.preprocessor.sequence_length
    )
    return family.task_class(backbone=hub_backbone, preprocessor=preprocessor)


def causal_logits_error(dual_model, hub_model, token_ids):
    """Largest |difference| of the two models' causal logits over their largest |logit|.

    Example:
    >>> import numpy as np
    >>> backbone = DualBackbone(64, 1, 2, 16, 32)
    >>> float(causal_logits_error(DualLM(backbone), to_keras_hub(backbone),
    ...                           np.array([[1, 5, 6]], "int32"))) < 1e-5
    True
    """
    token_ids = np.asarray(token_ids, "int32")
    hub_backbone = getattr(hub_model, "backbone", hub_model)
    hidden = hub_backbone({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)})
    expected = keras.ops.convert_to_numpy(hub_backbone.token_embedding(hidden, reverse=True))
    actual = keras.ops.convert_to_numpy(dual_model(token_ids))
    return np.abs(actual - expected).max() / np.abs(expected).max()
