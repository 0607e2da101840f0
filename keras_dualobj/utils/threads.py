"""Limit the compute threads of TensorFlow, JAX and PyTorch (`keras-dualobj train --threads`).

The library never sets threads by itself; this is what `--threads N` calls. Why it
matters on a shared machine: each backend starts one intra-op worker per core it
sees, and those workers spin-wait for each other at every parallel op. When other
processes hold the cores, a worker that is descheduled holds up the rest, which spin
instead of yielding, so two threads on a busy two-core machine can run several times
slower than one (docs/performance.md has the measurement). Give at most the number of
cores that are actually free.
"""

import importlib.util
import os
import sys

from keras_dualobj.utils.validation import check_int


def _jax_backend_started():
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def thread_environment(threads, environment=None):
    """The environment variables that limit a process to `threads` compute threads.

    `OMP_NUM_THREADS` (PyTorch), `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS`
    (TensorFlow) and `XLA_FLAGS` (JAX's CPU client; the other flags of
    `environment["XLA_FLAGS"]` are kept). Pass them to a child process to start it
    limited, as the tests do for every subprocess.

    >>> thread_environment(1, {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})["XLA_FLAGS"]
    '--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
    """
    check_int("threads", threads, minimum=1)
    environment = os.environ if environment is None else environment
    flags = [
        flag
        for flag in environment.get("XLA_FLAGS", "").split()
        if not flag.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))
    ]
    flags += ["--xla_cpu_multi_thread_eigen=" + ("true" if threads > 1 else "false"),
              f"intra_op_parallelism_threads={threads}"]
    return {
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": " ".join(flags),
    }


def set_compute_threads(threads):
    """Limits every backend's intra-op threads to `threads` and inter-op threads to 1.

    Sets the environment (`OMP_NUM_THREADS`, `TF_NUM_INTRAOP_THREADS`,
    `TF_NUM_INTEROP_THREADS`, `XLA_FLAGS` for JAX's CPU client) and the frameworks'
    own settings: `torch.set_num_threads` when PyTorch is imported, and TensorFlow's
    `tf.config.threading` (TensorFlow serves the data pipeline on every backend). Call it before the first computation: JAX reads `XLA_FLAGS` and
    TensorFlow its thread settings only once.

    Args:
        threads: int >= 1.

    Raises:
        ValueError: `threads` is not a positive integer.
        RuntimeError: JAX's or TensorFlow's runtime already started, so the limit
            could not take effect.

    Example (in a fresh process, before any computation):

        set_compute_threads(1)

    >>> set_compute_threads(0)
    Traceback (most recent call last):
    ...
    ValueError: `threads` must be an integer >= 1; received threads=0.
    """
    environment = thread_environment(threads)
    if _jax_backend_started():
        raise RuntimeError(
            f"cannot limit JAX to {threads} threads: its CPU runtime already started "
            "(set the threads before the first JAX computation)."
        )
    os.environ.update(environment)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before the first inter-op work
            pass
    # TensorFlow reports (and, in some thread pools, honours) only its own settings, not
    # the environment: import it here, as the command about to run would.
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as error:
            if tf.config.threading.get_intra_op_parallelism_threads() != threads:
                raise RuntimeError(
                    f"cannot limit TensorFlow to {threads} threads: its runtime already "
                    f"started ({error})."
                ) from error
