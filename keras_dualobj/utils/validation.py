"""Argument checks for public constructors: each error names the value and what is accepted."""

import math
import numbers

import numpy as np


def check_int(name, value, minimum=None, maximum=None):
    """Returns `value` if it is an integer in `[minimum, maximum]`, else raises.

    Example:
    >>> check_int("num_layers", 2, minimum=1)
    2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; received {name}={value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an integer <= {maximum}; received {name}={value!r}.")
    return int(value)


def check_float(name, value, minimum=None, maximum=None, include_maximum=True):
    """Returns `value` as a float if it is finite and within bounds, else raises.

    Example:
    >>> check_float("ar_fraction", 0.5, minimum=0.0, maximum=1.0)
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number; received {name}={value!r}.")
    value = float(value)
    upper = "]" if include_maximum else ")"
    accepted = (
        f"a finite number in [{minimum}, {maximum}{upper}"
        if maximum is not None
        else f"a finite number >= {minimum}"
    )
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be {accepted}; received {name}={value!r}.")
    too_small = minimum is not None and value < minimum
    too_large = maximum is not None and (
        value > maximum or (not include_maximum and value == maximum)
    )
    if too_small or too_large:
        raise ValueError(f"`{name}` must be {accepted}; received {name}={value!r}.")
    return value


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises.

    Example:
    >>> check_choice("mode", "causal", ("causal", "bidirectional"))
    'causal'
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; received {name}={value!r}.")
    return value


def concrete_values(tensor):
    """The values of `tensor` as a NumPy array, or `None` while it is being traced.

    Eager inputs (NumPy, lists, eager backend tensors) can be checked at the public
    boundary; inside a compiled `fit()` step (a JAX tracer, a TensorFlow graph
    tensor, PyTorch's symbolic or compiled pass) values do not exist yet.

    Example:
    >>> concrete_values([[1, 2]]).tolist()
    [[1, 2]]
    """
    if isinstance(tensor, (np.ndarray, list, tuple, numbers.Number)):
        return np.asarray(tensor)
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            if isinstance(tensor, jax.core.Tracer):
                return None
        elif backend == "tensorflow":
            import tensorflow as tf

            if not tf.executing_eagerly() or tf.is_symbolic_tensor(tensor):
                return None
        elif backend == "torch":
            import torch

            if torch.compiler.is_compiling() or tensor.device.type == "meta":
                return None
        return np.asarray(keras.ops.convert_to_numpy(tensor))
    except Exception:  # any tensor a backend cannot show eagerly is left to the graph
        return None


def _static_shape(tensor):
    return tuple(getattr(tensor, "shape", np.shape(tensor)))


def check_token_values(name, values, vocabulary_size):
    """Raises if an id in `values` is outside `[0, vocabulary_size)`; `None` passes.

    Example:
    >>> check_token_values("token_ids", np.array([[1, 5]]), vocabulary_size=8)
    """
    if values is None or values.size == 0:
        return
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"`{name}` must be integers; received dtype {values.dtype}.")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocabulary_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"`{name}` holds token id {bad}, outside the vocabulary of {vocabulary_size} "
            f"ids (accepted: 0..{vocabulary_size - 1})."
        )


def check_model_inputs(features, vocabulary_size, max_sequence_length, check_values=True):
    """Checks unpacked `DualLM` inputs (`token_ids`, `document_ids`, `prefix_lengths`).

    Shapes are checked always (statically); values only when they are concrete
    (see `concrete_values`) and `check_values` is true. Training steps pass
    `check_values=False`: reading values back would sync the device on every step
    (PyTorch runs its steps eagerly), and `fit()` checks array inputs up front.

    Example:
    >>> ids = np.array([[1, 7, 8]])
    >>> check_model_inputs({"token_ids": ids, "document_ids": ids * 0}, 16, 8)
    """
    token_ids = features["token_ids"]
    shape = _static_shape(token_ids)
    length = shape[1] if len(shape) == 2 else None
    if length is not None and max_sequence_length is not None and length > max_sequence_length:
        raise ValueError(
            f"`token_ids` rows are {length} tokens long, beyond the backbone's "
            f"max_sequence_length of {max_sequence_length}; pass rows of at most "
            f"{max_sequence_length} tokens."
        )
    document_ids = features.get("document_ids")
    if document_ids is not None:
        document_shape = _static_shape(document_ids)
        if len(document_shape) != 2 or any(
            a is not None and b is not None and a != b for a, b in zip(document_shape, shape)
        ):
            raise ValueError(
                "`document_ids` must have the shape of `token_ids` "
                f"{tuple(shape)}; received shape {tuple(document_shape)}."
            )
        dtype = getattr(document_ids, "dtype", None)
        dtype = str(np.asarray(document_ids).dtype if dtype is None else dtype)
        if "int" not in dtype:
            raise TypeError(f"`document_ids` must be integers; received dtype {dtype}.")
    prefix_lengths = features.get("prefix_lengths")
    if prefix_lengths is not None:
        prefix_shape = _static_shape(prefix_lengths)
        if len(prefix_shape) != 1 or (
            prefix_shape[0] is not None and shape[0] is not None and prefix_shape[0] != shape[0]
        ):
            raise ValueError(
                f"`prefix_lengths` must have shape [batch] = ({shape[0]},); received shape "
                f"{tuple(prefix_shape)}."
            )
        prefix_values = concrete_values(prefix_lengths) if check_values else None
        if prefix_values is not None and prefix_values.size and prefix_values.min() < 0:
            raise ValueError(
                "`prefix_lengths` must be >= 0 (0 is causal, >= length bidirectional); "
                f"received {prefix_values.tolist()}."
            )
    if check_values:
        check_token_values("token_ids", concrete_values(token_ids), vocabulary_size)


def check_array_inputs(x, vocabulary_size, max_sequence_length, y=None):
    """Checks NumPy / list inputs of `fit()` / `evaluate()` before Keras batches them.

    Datasets, generators and backend tensors pass through unchecked here (their
    shapes are checked by the model's call; values only outside training). An error
    raised inside a compiled JAX step would leave the model's variables unusable,
    hence these checks before the step.

    Example:
    >>> check_array_inputs(np.array([[1, 7]]), 16, 8)
    """
    if y is not None:
        raise ValueError(
            "`DualLM` builds its own targets from the token ids: pass only inputs "
            f"(token ids or a dict with `token_ids` and optional `document_ids`), no "
            f"labels; received y of type {type(y).__name__}."
        )
    features = x if isinstance(x, dict) else {"token_ids": x}
    if not isinstance(features.get("token_ids"), (np.ndarray, list, tuple)):
        return
    token_ids = np.asarray(features["token_ids"])
    if token_ids.ndim != 2:
        raise ValueError(
            f"`token_ids` must have shape [batch, length]; received shape {token_ids.shape}."
        )
    if not np.issubdtype(token_ids.dtype, np.integer):
        raise TypeError(f"`token_ids` must be integers; received dtype {token_ids.dtype}.")
    checked = {"token_ids": token_ids}
    for name in ("document_ids", "prefix_lengths"):
        if features.get(name) is not None:
            checked[name] = np.asarray(features[name])
    check_model_inputs(checked, vocabulary_size, max_sequence_length)


def check_tokenizer_compatible(tokenizer, vocabulary_size, special_token_ids):
    """Raises if a tokenizer does not fit a model's vocabulary and special ids.

    Args:
        tokenizer: a tokenizer or `None` (nothing to check).
        vocabulary_size: the backbone's vocabulary size.
        special_token_ids: dict name -> id given explicitly (`None` when not given).

    Example:
    >>> check_tokenizer_compatible(None, 16, {"mask_token_id": 4})
    """
    if tokenizer is None:
        return
    try:
        tokenizer_size = int(tokenizer.vocabulary_size())
    except Exception:  # duck-typed tokenizers, or a saved one whose vocabulary loads later
        tokenizer_size = None
    if tokenizer_size is not None and tokenizer_size > vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer_size} ids but the backbone's vocabulary_size is "
            f"{vocabulary_size}; build the backbone with vocabulary_size >= {tokenizer_size}."
        )
    for name, value in special_token_ids.items():
        tokenizer_value = getattr(tokenizer, name, None)
        if value is not None and tokenizer_value is not None and value != tokenizer_value:
            raise ValueError(
                f"`{name}`={value} does not match the tokenizer's {name}={tokenizer_value}; "
                f"omit `{name}` (the tokenizer's is used) or pass {tokenizer_value}."
            )

