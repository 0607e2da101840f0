"""Initializer helpers."""

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer`.

    A Keras initializer instance draws the same values on every call (an unseeded one
    fixes a random seed when it is created), so every weight gets its own copy, as in
    keras-hub, to avoid identical matrices across layers.

    Example:
    >>> import keras
    >>> init = keras.initializers.RandomNormal(stddev=0.02)
    >>> clone_initializer(init) is init
    False
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())
