"""How `DualBackbone`'s weights are laid out on a `batch x model` device mesh.

The rules (`LAYOUT_RULES`) follow keras-hub's Gemma and Llama backbones; see
`DualBackbone.get_layout_map`, the public entry point.
"""

import keras

# (variable path regex, layout with "model" / "batch" placeholders, shape fn).
# The shape function gives the variable's shape from a backbone config, to check
# that each sharded dimension divides by its mesh axis.
LAYOUT_RULES = (
    (
        "token_embedding/embeddings",
        ("model", "batch"),
        lambda c: (c["vocabulary_size"], c["hidden_dim"]),
    ),
    (
        "token_embedding/reverse_embeddings",
        ("batch", "model"),
        lambda c: (c["hidden_dim"], c["vocabulary_size"]),
    ),
    ("token_embedding/output_bias", ("model",), lambda c: (c["vocabulary_size"],)),
    (
        "token_embedding/head_projection/kernel",
        ("batch", "model"),
        lambda c: (c["hidden_dim"], c["hidden_dim"]),
    ),
    (
        "transformer_layer_.*/attention/query/kernel",
        ("batch", "model", None),
        lambda c: (c["hidden_dim"], c["num_heads"], c["hidden_dim"] // c["num_heads"]),
    ),
    (
        "transformer_layer_.*/attention/(key|value)/kernel",
        ("batch", "model", None),
        lambda c: (
            c["hidden_dim"],
            c.get("num_key_value_heads") or c["num_heads"],
            c["hidden_dim"] // c["num_heads"],
        ),
    ),
    (
        "transformer_layer_.*/attention/attention_output/kernel",
        ("model", None, "batch"),
        lambda c: (c["num_heads"], c["hidden_dim"] // c["num_heads"], c["hidden_dim"]),
    ),
    (
        "transformer_layer_.*/feed_forward/(gate|up)/kernel",
        ("batch", "model"),
        lambda c: (c["hidden_dim"], c["intermediate_dim"]),
    ),
    (
        "transformer_layer_.*/feed_forward/down/kernel",
        ("model", "batch"),
        lambda c: (c["intermediate_dim"], c["hidden_dim"]),
    ),
)


def _divides(axes, shape, axis_sizes):
    return all(name is None or size % axis_sizes[name] == 0 for name, size in zip(axes, shape))


def fitted_axes(axes, shape, axis_sizes):
    """`axes`, or its two named axes swapped, or with the misfits replicated.

    JAX shards a dimension only if the mesh axis size divides it.

    Example:
    >>> fitted_axes(("batch", "model"), (1024, 3554), {"batch": 1, "model": 4})
    ('model', 'batch')
    >>> fitted_axes(("batch", "model"), (6, 6), {"batch": 4, "model": 4})
    (None, None)
    """
    axes = tuple(axes)
    if _divides(axes, shape, axis_sizes):
        return axes
    named = [index for index, name in enumerate(axes) if name is not None]
    if len(named) == 2:
        swapped = list(axes)
        first, second = named
        swapped[first], swapped[second] = axes[second], axes[first]
        if _divides(swapped, shape, axis_sizes):
            return tuple(swapped)
    return tuple(
        name if name is None or size % axis_sizes[name] == 0 else None
        for name, size in zip(axes, shape)
    )


def backbone_layout_map(device_mesh, model_dim="model", data_dim="batch", backbone_config=None):
    """The `LayoutMap` of `DualBackbone.get_layout_map` (see there)."""
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise TypeError(
            "`device_mesh` must be a keras.distribution.DeviceMesh; received "
            f"{type(device_mesh).__name__}."
        )
    for argument, name in (("model_parallel_dim_name", model_dim),
                           ("data_parallel_dim_name", data_dim)):
        if name not in device_mesh.axis_names:
            raise ValueError(
                f"`{argument}`={name!r} is not an axis of the device mesh; its axes "
                f"are {list(device_mesh.axis_names)}."
            )
    if backbone_config is not None and not isinstance(backbone_config, dict):
        raise TypeError(
            "`backbone_config` must be a dict (a DualBackbone config) or None; "
            f"received {type(backbone_config).__name__}."
        )
    names = {"model": model_dim, "batch": data_dim}
    axis_sizes = dict(zip(device_mesh.axis_names, device_mesh.shape))
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes, shape_of in LAYOUT_RULES:
        axes = tuple(None if axis is None else names[axis] for axis in axes)
        if backbone_config is not None:
            axes = fitted_axes(axes, shape_of(backbone_config), axis_sizes)
        # A backbone inside a task may carry a path prefix.
        layout_map["(?:.*/)?" + pattern] = axes
    return layout_map
