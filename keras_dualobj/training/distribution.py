"""Many devices through `keras.distribution`: the `--distribution` specs.

Keras itself is the engine (as in keras-hub); this module only turns a short spec
into a Keras distribution for our backbone:

| spec | Keras object | mesh |
|---|---|---|
| `single` (or `None`) | none: one device | - |
| `data` / `data:N` | `keras.distribution.DataParallel` | all (or N) devices on `batch` |
| `model:BxM` | `keras.distribution.ModelParallel` with `DualBackbone.get_layout_map` | `batch` B x `model` M |

Backends: in Keras 3.15 `keras.distribution` runs on **JAX** only. The TensorFlow
backend has a DTensor prototype (`keras/src/backend/tensorflow/distribution_lib.py`,
marked "DO NOT USE", `distribute_value` unimplemented) and PyTorch has none (its
`distribution_lib` is `None`), so a spec other than `single` raises a `ValueError`
there.

Multi-host: start every process with the same command after
`keras.distribution.initialize(job_addresses="host0:1234", num_processes=P,
process_id=i)` (or the `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
`KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID` environment
variables, which `keras-dualobj train` reads through `initialize()`); the mesh then
spans the devices of all hosts, and `fit()` gives each process its own shard of every
global batch of the `tf.data` pipeline (`Distribution.distribute_dataset`: rebatch to
the per-process batch, then shard by process), so the repetition plan's order of
global batches is unchanged.
"""

import dataclasses
import re

import keras

DISTRIBUTION_BACKENDS = ("jax",)
_SPEC_PATTERN = re.compile(r"^(single|data(?::(\d+))?|model:(\d+)x(\d+))$")


@dataclasses.dataclass(frozen=True)
class DistributionSpec:
    """A parsed `--distribution` spec.

    Attributes:
        kind: `"single"`, `"data"` or `"model"`.
        batch: devices on the batch axis (`None`: all, for `"data"`).
        model: devices on the model axis (1 unless `"model"`).
    """

    kind: str
    batch: int = None
    model: int = 1

    def __str__(self):
        if self.kind == "model":
            return f"model:{self.batch}x{self.model}"
        if self.kind == "data" and self.batch is not None:
            return f"data:{self.batch}"
        return self.kind


def parse_distribution(spec):
    """A `DistributionSpec` from `"single"`, `"data"`, `"data:N"` or `"model:BxM"`.

    Example:
    >>> parse_distribution("model:2x4")
    DistributionSpec(kind='model', batch=2, model=4)
    >>> str(parse_distribution(None)), str(parse_distribution("data"))
    ('single', 'data')
    """
    if spec is None:
        return DistributionSpec("single", 1, 1)
    if isinstance(spec, DistributionSpec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"A distribution spec must be a string; received {type(spec).__name__}."
        )
    match = _SPEC_PATTERN.match(spec.strip())
    sizes = [int(group) for group in match.groups()[1:] if group] if match else []
    if match is None or any(size < 1 for size in sizes):
        raise ValueError(
            f"Unknown distribution spec {spec!r}; accepted are 'single', 'data', "
            "'data:N' (N devices) and 'model:BxM' (a batch x model mesh), N, B, M >= 1."
        )
    if spec.startswith("model"):
        return DistributionSpec("model", sizes[0], sizes[1])
    if spec.startswith("data"):
        return DistributionSpec("data", sizes[0] if sizes else None, 1)
    return DistributionSpec("single", 1, 1)


def check_distribution_backend(backend=None):
    """Raises a `ValueError` unless `keras.distribution` runs on `backend`."""
    backend = backend or keras.backend.backend()
    if backend not in DISTRIBUTION_BACKENDS:
        raise ValueError(
            f"keras.distribution runs on the JAX backend in Keras {keras.__version__}; "
            f"received the {backend!r} backend (TensorFlow has only an unfinished "
            "DTensor prototype, PyTorch none). Use --distribution single, or "
            "KERAS_BACKEND=jax."
        )


def make_distribution(spec, backbone_config=None, devices=None):
    """The Keras distribution of `spec` (`None` for `single`).

    Args:
        spec: a spec string or `DistributionSpec` (see the module docstring).
        backbone_config: optional `DualBackbone` config, so the layout map fits
            its shapes (see `DualBackbone.get_layout_map`).
        devices: devices to use (default: `keras.distribution.list_devices()`,
            which spans all hosts after `keras.distribution.initialize`).

    Returns:
        A `keras.distribution.Distribution`, or `None` for one device. Use it as
        `with distribution.scope(): model = ...; model.fit(...)` or
        `keras.distribution.set_distribution(distribution)`.

    Example:
    >>> make_distribution("single") is None
    True
    """
    spec = parse_distribution(spec)
    if spec.kind == "single":
        return None
    check_distribution_backend()
    from keras_dualobj.models.dual_backbone import DualBackbone

    devices = list(devices or keras.distribution.list_devices())
    needed = len(devices) if spec.batch is None else spec.batch * spec.model
    if needed > len(devices):
        raise ValueError(
            f"Distribution {str(spec)!r} needs {needed} devices; {len(devices)} are "
            f"available ({devices[:4]}{'...' if len(devices) > 4 else ''})."
        )
    if spec.kind == "data":
        return keras.distribution.DataParallel(devices=devices[:needed])
    mesh = keras.distribution.DeviceMesh(
        shape=(spec.batch, spec.model), axis_names=("batch", "model"), devices=devices[:needed]
    )
    layout_map = DualBackbone.get_layout_map(
        mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch",
        backbone_config=backbone_config,
    )
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def data_parallel_size(distribution):
    """How many ways `distribution` splits each batch (1 without one).

    Example:
    >>> data_parallel_size(None)
    1
    """
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    axis = getattr(distribution, "batch_dim_name", None) or mesh.axis_names[0]
    return int(mesh.shape[list(mesh.axis_names).index(axis)])


def check_batch_divides(batch_size, distribution, name="batch_size"):
    """Raises a `ValueError` unless the batch splits evenly over the data axis.

    Example:
    >>> check_batch_divides(8, None)
    """
    ways = data_parallel_size(distribution)
    if batch_size % ways:
        raise ValueError(
            f"`{name}`={batch_size} does not split over the {ways} devices of the "
            f"distribution's batch axis; use a multiple of {ways}."
        )
