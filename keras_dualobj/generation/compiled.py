"""Compiling a decoding function once per input shape, on each backend.

The same recipe as keras-hub's `CausalLM.make_generate_function`: `tf.function` with
XLA on TensorFlow, `jax.jit` over the model's variables passed in as arguments
(stateless) on JAX, and plain eager calls under `torch.no_grad()` on PyTorch. Each
compiled function is traced once per input shape: later calls with the same shapes
reuse it.
"""

import functools
import itertools

import keras
from keras import ops
from keras import tree


def compile_decoding_function(function, model, seed_variables=()):
    """Compiles `function(inputs) -> outputs` for the current backend.

    Args:
        function: a Python function of a dict of tensors that reads `model`'s
            variables and may advance random seeds (its only side effect).
        model: the `keras.Model` whose variables `function` reads. With
            `model.run_eagerly`, `function` is returned uncompiled (for debugging).
        seed_variables: the states of the `keras.random.SeedGenerator`s `function`
            draws from (e.g. a keras-hub sampler's `variables`); they advance across
            calls, as if `function` ran eagerly.

    Returns:
        A function of the same dict of tensors (or NumPy arrays).

    Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> double = compile_decoding_function(lambda x: 2 * model(x["inputs"]), model)
    >>> tuple(double({"inputs": np.ones((1, 3), "float32")}).shape)
    (1, 2)
    """
    seed_states = list(seed_variables)
    backend = keras.config.backend()
    if getattr(model, "run_eagerly", False):
        return function
    if backend == "torch":
        import torch

        def run_without_gradients(inputs):
            with torch.no_grad():
                return function(inputs)

        return run_without_gradients
    if backend == "tensorflow":
        import tensorflow as tf

        # TF counts traces per source function and warns after five; every compiled
        # decoding function shares one source closure, so a fresh `partial` keeps the
        # count (and the warning) per compiled function, where it means something.
        return tf.function(functools.partial(function), jit_compile=True)
    if backend != "jax":
        return function

    import jax

    @jax.jit
    def stateless_function(inputs, state):
        seed_values, trainable_values, non_trainable_values = state
        mapping = itertools.chain(
            zip(seed_states, seed_values),
            zip(model.trainable_variables, trainable_values),
            zip(model.non_trainable_variables, non_trainable_values),
        )
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = function(inputs)
        new_seed_values = []
        for variable, old_value in zip(seed_states, seed_values):
            new_value = scope.get_current_value(variable)
            new_seed_values.append(old_value if new_value is None else new_value)
        return outputs, new_seed_values

    def run_stateless(inputs):
        # `.value` keeps the variables' sharding, as keras-hub does.
        state = (
            [variable.value for variable in seed_states],
            [variable.value for variable in model.trainable_variables],
            [variable.value for variable in model.non_trainable_variables],
        )
        inputs = tree.map_structure(ops.convert_to_tensor, inputs)
        outputs, new_seed_values = stateless_function(inputs, state)
        for variable, value in zip(seed_states, new_seed_values):
            variable.assign(value)
        return outputs

    return run_stateless


class DecodingFunctionCache:
    """Compiled decoding functions of one model, keyed by what they close over.

    A plain object rather than a dict attribute of the model: Keras tracks dicts
    assigned to a model, and would then save the samplers' seed states as weights.

    Example:
    >>> cache = DecodingFunctionCache()
    >>> cache.get(("greedy",), lambda: "built") , cache.get(("greedy",), lambda: "again")
    ('built', 'built')
    """

    def __init__(self):
        self._entries = {}

    def get(self, key, build):
        if key not in self._entries:
            self._entries[key] = build()
        return self._entries[key]

    def __len__(self):
        return len(self._entries)
