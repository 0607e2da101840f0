"""The paper's optimiser recipe: Muon on weight matrices, AdamW on everything else.

## How Keras' Muon relates to the reference `kimi_muon` (Moonlight) implementation

The reference (MoonshotAI's Moonlight `Muon`, Liu et al. 2025, arXiv 2502.16982) and
`keras.optimizers.Muon` (Keras 3.15) compute the same update for a 2-D matrix `W`
with gradient `G`, one learning rate `lr` and weight decay `wd`:

    M <- momentum * M + G                       (both)
    U <- NS5(G + momentum * M)                  (Nesterov; 5 Newton-Schulz steps;
                                                 both normalise by the Frobenius norm)
    W <- W * (1 - lr * wd)                      (both: decoupled, *unscaled* lr)
    W <- W - lr * 0.2 * sqrt(max(rows, cols)) * U
                                                (Keras: `rms_rate=0.2`; Moonlight:
                                                 `adjust_lr_for_muon`)

and the AdamW fallback in both uses the *same* `lr` (Keras: `adam_lr_ratio=1`) with
bias correction and epsilon added to the uncorrected `sqrt(v)`, identically. The
0.2 * sqrt(max(rows, cols)) factor makes the update's RMS about 0.2, AdamW's typical
RMS, which is why one learning rate serves both halves. So **the paper's learning
rate transfers 1:1** (7e-3 in Keras = 7e-3 in the reference), provided the
defaults that differ are set as the reference has them, which `build_optimizer`
does:

- `adam_beta_2=0.95` (Keras default 0.999), `epsilon=1e-8` (Keras default 1e-7);
- `weight_decay=adam_weight_decay=0.1` (Keras defaults 0.004);
- **attention kernels**: ours are 3-D `EinsumDense` kernels (`[hidden, heads,
  head_dim]`, `[heads, head_dim, hidden]`). Stock Keras Muon sends every non-2-D
  variable to AdamW, so q/k/v/o would silently train with AdamW. `MatrixMuon`
  orthogonalises each such kernel as the `[hidden, heads * head_dim]` (or
  `[heads * head_dim, hidden]`) matrix it is — the `nn.Linear` weight of the
  reference — and uses that matrix's shape in the 0.2 * sqrt(max) factor.

Other Muon flavours use other scales: Keller Jordan's original scales `U` by
`sqrt(max(1, rows / cols))` with lr ~0.02 (convert with
`lr_keras = lr_kj * sqrt(max(1, rows / cols)) / (0.2 * sqrt(max(rows, cols)))`, a
per-matrix factor — use `rms_rate=None` and per-shape rates to reproduce it exactly).
The reference runs Newton-Schulz in bfloat16; Keras runs it in the variable dtype
(float32 here), which is at least as accurate.
"""

import math

import keras
from keras import ops

from keras_dualobj.optimization.schedules import WarmupStableDecay
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

OPTIMIZERS = ("muon", "adamw")


def _einsum_matrix_shape(equation, kernel_shape):
    """`(rows, cols)` of an EinsumDense kernel: contracted axes x output axes."""
    inputs, output = equation.split("->")
    input_spec, kernel_spec = inputs.split(",")
    contracted = [axis for axis in kernel_spec if axis in input_spec and axis not in output]
    num_contracted = len(contracted)
    if kernel_spec[:num_contracted] != "".join(contracted) or num_contracted == 0:
        raise ValueError(
            f"Cannot view the kernel of EinsumDense equation {equation!r} as a matrix: "
            "its contracted axes must come first; accepted are equations like "
            "'btd,dnh->btnh' or 'btnh,nhd->btd'."
        )
    rows = math.prod(kernel_shape[:num_contracted])
    cols = math.prod(kernel_shape[num_contracted:])
    return (int(rows), int(cols))


def muon_matrix_shapes(model):
    """The weight matrices Muon trains, as `{variable path: (rows, cols)}`.

    Every `Dense` and `EinsumDense` kernel of `model` (attention q/k/v/o and the SwiGLU
    gate/up/down of each block), with 3-D attention kernels viewed as the
    `[inputs, outputs]` matrix they multiply by. The token embedding, the output head
    (`ReversibleEmbedding`, not a `Dense`) and the 1-D RMSNorm scales are not listed:
    the recipe trains them with AdamW.

    Args:
        model: a built `DualLM` or `DualBackbone` (any Keras model works).

    Returns:
        dict mapping `variable.path` to `(rows, cols)`, in the model's variable order.

    Example:
    >>> from keras_dualobj.models import DualBackbone
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                         hidden_dim=32, intermediate_dim=48)
    >>> muon_matrix_shapes(backbone)["transformer_layer_0/attention/query/kernel"]
    (32, 32)
    >>> len(muon_matrix_shapes(backbone))  # q, k, v, o, gate, up, down
    7
    """
    shapes = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, (keras.layers.EinsumDense, keras.layers.Dense)) and not layer.built:
            raise ValueError(
                f"Layer {layer.name!r} is not built, so its matrix is unknown: build the "
                "model (e.g. call it on a batch) before reading its Muon matrices."
            )
        if isinstance(layer, keras.layers.EinsumDense):
            kernel = layer.kernel
            shapes[kernel.path] = _einsum_matrix_shape(layer.equation, tuple(kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel
            shapes[kernel.path] = tuple(int(size) for size in kernel.shape)
    # In the model's variable order (layer 0 first), whatever the traversal order.
    order = {variable.path: index for index, variable in enumerate(model.weights)}
    return dict(sorted(shapes.items(), key=lambda item: order.get(item[0], len(order))))


@keras.saving.register_keras_serializable(package="keras_dualobj")
class MatrixMuon(keras.optimizers.Muon):
    """`keras.optimizers.Muon` on an explicit set of weight matrices of any rank.

    Variables listed in `matrix_shapes` get the Muon update computed on their matrix
    view (`reshape` to `(rows, cols)`, Newton-Schulz, scale by
    `rms_rate * sqrt(max(rows, cols))`, reshape back); every other trainable
    variable gets Keras Muon's AdamW step. This fixes stock Muon's rule "Muon iff
    2-D and not named *embedding*", which trains 3-D attention kernels with AdamW.
    Build the mapping with `muon_matrix_shapes(model)`; `build_optimizer` does.

    Args:
        matrix_shapes: dict `{variable path: (rows, cols)}`.
        **kwargs: arguments of `keras.optimizers.Muon`.

    Example:
    >>> import numpy as np
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                         hidden_dim=32, intermediate_dim=48)
    >>> model = DualLM(backbone, seed=0)
    >>> model.compile(optimizer=MatrixMuon(muon_matrix_shapes(model), learning_rate=7e-3))
    >>> _ = model.fit(np.random.randint(5, 64, (4, 16)), epochs=1, verbose=0)
    >>> model.optimizer.uses_muon(backbone.get_layer("transformer_layer_0")
    ...                           .attention.query_dense.kernel)
    True
    """

    def __init__(self, matrix_shapes, **kwargs):
        if not isinstance(matrix_shapes, dict) or not matrix_shapes:
            raise ValueError(
                "`matrix_shapes` must be a non-empty dict {variable path: (rows, cols)}, "
                f"e.g. from muon_matrix_shapes(model); received {matrix_shapes!r}."
            )
        super().__init__(**kwargs)
        self.matrix_shapes = {
            str(path): (int(shape[0]), int(shape[1])) for path, shape in matrix_shapes.items()
        }

    def uses_muon(self, variable):
        """Whether `variable` gets the Muon update (else AdamW)."""
        return variable.path in self.matrix_shapes

    def _should_use_adamw(self, variable):
        return not self.uses_muon(variable)

    def build(self, var_list):
        if self.built:
            return
        by_path = {variable.path: variable for variable in var_list}
        missing = sorted(set(self.matrix_shapes) - set(by_path))
        if missing:
            raise ValueError(
                f"`matrix_shapes` names variables the model does not train: {missing}; "
                f"trainable variables are {sorted(by_path)}."
            )
        for path, (rows, cols) in self.matrix_shapes.items():
            size = math.prod(by_path[path].shape)
            if rows * cols != size:
                raise ValueError(
                    f"Matrix view ({rows}, {cols}) of {path!r} does not match its shape "
                    f"{tuple(by_path[path].shape)} ({size} entries)."
                )
        super().build(var_list)
        # Update steps may receive backend variables without a Keras path (TF), so
        # the matrix view is looked up by variable index.
        self._matrix_views = {
            self._get_variable_index(variable): self.matrix_shapes[variable.path]
            for variable in var_list
            if variable.path in self.matrix_shapes
        }

    def _muon_update_step(self, gradient, variable, lr, m):
        # Keras Muon's update with a reshape around the Newton-Schulz step.
        matrix_shape = self._matrix_views[self._get_variable_index(variable)]
        self.assign_add(m, ops.add(gradient, m * (self.momentum - 1)))
        if self.nesterov:
            direction = ops.add(gradient, self.momentum * m)
        else:
            direction = m
        update = self.zeropower_via_newtonschulz5(
            ops.reshape(direction, matrix_shape), self.ns_steps
        )
        update = self.lr_adjust(lr * update)
        self.assign_sub(variable, ops.reshape(update, ops.shape(variable)))

    def get_config(self):
        config = super().get_config()
        config["matrix_shapes"] = {path: list(shape) for path, shape in self.matrix_shapes.items()}
        return config


@keras.saving.register_keras_serializable(package="keras_dualobj")
class PerUpdateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule that counts optimizer updates while Keras counts micro-batches.

    With `gradient_accumulation_steps=k`, a Keras optimizer calls its schedule with
    the micro-batch counter; the update that ends micro-batches `n k .. n k + k - 1`
    should get the rate of update `n`, so this returns `schedule(step // k)` and the
    WSD warm-up and decay count optimizer steps.

    Example:
    >>> schedule = PerUpdateSchedule(WarmupStableDecay(1.0, 10, warmup_fraction=0.5), 4)
    >>> [round(float(schedule(step)), 2) for step in (0, 3, 4, 7, 8)]
    [0.2, 0.2, 0.4, 0.4, 0.6]
    """

    def __init__(self, schedule, accumulation_steps):
        check_int("accumulation_steps", accumulation_steps, minimum=1)
        self.schedule = schedule
        self.accumulation_steps = accumulation_steps

    def __call__(self, step):
        return self.schedule(ops.floor_divide(step, self.accumulation_steps))

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "accumulation_steps": self.accumulation_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def build_optimizer(
    model,
    optimizer="muon",
    learning_rate=7e-3,
    total_steps=None,
    warmup_fraction=0.01,
    decay_fraction=0.25,
    decay_shape="linear",
    final_learning_rate=0.0,
    weight_decay=0.1,
    momentum=0.95,
    ns_steps=5,
    nesterov=True,
    adam_beta_1=0.9,
    adam_beta_2=0.95,
    epsilon=1e-8,
    clip_norm=None,
    accumulation_steps=1,
):
    """The paper's optimiser in one call: Muon + AdamW under a WSD schedule.

    `optimizer="muon"`: `MatrixMuon` on every attention and feed-forward matrix
    (`muon_matrix_shapes`), AdamW on the embedding, the output head and the RMSNorm
    scales, one learning rate for both (the reference's convention; see the module
    docstring for why the rate transfers 1:1 from the reference). `"adamw"`: plain
    `keras.optimizers.AdamW` on everything, as the alternative.

    Args:
        model: the (built) model whose variables will be trained.
        optimizer: `"muon"` (default) or `"adamw"`.
        learning_rate: float. Peak learning rate. Defaults to `7e-3` (the paper's).
        total_steps: int or `None`. With an int, the rate follows
            `WarmupStableDecay(learning_rate, total_steps, ...)`; `None` keeps it
            constant.
        warmup_fraction, decay_fraction, decay_shape, final_learning_rate: the WSD
            schedule (see `WarmupStableDecay`).
        weight_decay: float. Decoupled weight decay of all variables. Defaults to `0.1`.
        momentum, ns_steps, nesterov: Muon's momentum, Newton-Schulz steps and
            Nesterov switch. Default `0.95, 5, True` (the paper's).
        adam_beta_1, adam_beta_2, epsilon: AdamW's. Default `0.9, 0.95, 1e-8` (the
            reference's).
        clip_norm: float or `None`. Clip gradients to this global norm.
        accumulation_steps: int >= 1. Micro-batches whose gradients are averaged
            into one update (Keras' `gradient_accumulation_steps`); `total_steps`
            and the schedule count updates (`PerUpdateSchedule`), so `fit()` takes
            `accumulation_steps` times as many steps of batches that many times
            smaller.

    Returns:
        A Keras optimizer, to pass to `model.compile(optimizer=...)`.

    Example:
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> backbone = DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                         hidden_dim=32, intermediate_dim=48)
    >>> model = DualLM(backbone)
    >>> optimizer = build_optimizer(model, learning_rate=7e-3, total_steps=100)
    >>> type(optimizer).__name__, optimizer.get_config()["learning_rate"]["class_name"]
    ('MatrixMuon', 'WarmupStableDecay')
    >>> model.compile(optimizer=optimizer)
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_float("learning_rate", learning_rate, minimum=0.0)
    if learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be > 0; received learning_rate={learning_rate!r}.")
    check_float("weight_decay", weight_decay, minimum=0.0)
    check_float("momentum", momentum, minimum=0.0, maximum=1.0, include_maximum=False)
    check_int("ns_steps", ns_steps, minimum=1)
    check_float("adam_beta_1", adam_beta_1, minimum=0.0, maximum=1.0, include_maximum=False)
    check_float("adam_beta_2", adam_beta_2, minimum=0.0, maximum=1.0, include_maximum=False)
    check_float("epsilon", epsilon, minimum=0.0)
    if clip_norm is not None:
        check_float("clip_norm", clip_norm, minimum=0.0)
        if clip_norm <= 0:
            raise ValueError(
                f"`clip_norm` must be > 0 or None; received clip_norm={clip_norm!r}."
            )
    check_int("accumulation_steps", accumulation_steps, minimum=1)
    accumulation = {}
    if accumulation_steps > 1:
        accumulation["gradient_accumulation_steps"] = accumulation_steps
    if total_steps is None:
        schedule = float(learning_rate)
    else:
        schedule = WarmupStableDecay(
            learning_rate,
            total_steps,
            warmup_fraction=warmup_fraction,
            decay_fraction=decay_fraction,
            decay_shape=decay_shape,
            final_learning_rate=final_learning_rate,
        )
        if accumulation_steps > 1:
            schedule = PerUpdateSchedule(schedule, accumulation_steps)
    if optimizer == "adamw":
        return keras.optimizers.AdamW(
            learning_rate=schedule,
            weight_decay=weight_decay,
            beta_1=adam_beta_1,
            beta_2=adam_beta_2,
            epsilon=epsilon,
            global_clipnorm=clip_norm,
            **accumulation,
        )
    return MatrixMuon(
        muon_matrix_shapes(model),
        learning_rate=schedule,
        weight_decay=weight_decay,
        adam_weight_decay=weight_decay,
        momentum=momentum,
        ns_steps=ns_steps,
        nesterov=nesterov,
        adam_beta_1=adam_beta_1,
        adam_beta_2=adam_beta_2,
        epsilon=epsilon,
        adam_lr_ratio=1.0,
        rms_rate=0.2,
        exclude_embeddings=False,
        global_clipnorm=clip_norm,
        **accumulation,
    )
