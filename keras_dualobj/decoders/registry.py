"""`get`: a decoder from a name, a config, a keras-hub sampler, or a decoder."""

import importlib

import keras
import keras_hub

from keras_dualobj.decoders.ar import SAMPLER_NAMES
from keras_dualobj.decoders.ar import ARDecoder
from keras_dualobj.decoders.base import Decoder
from keras_dualobj.decoders.signatures import DECODER_CLASSES

DECODERS = {
    name: getattr(importlib.import_module(module), class_name)
    for name, (module, class_name) in DECODER_CLASSES.items()
}


def get(identifier, **options):
    """A decoder from a name, a config, a keras-hub sampler, or a decoder (returned as is).

    Args:
        identifier: `"ar"`, `"md"`, `"speculative"` (the class of that name, built
            with `options`); a keras-hub sampler name (`"greedy"`, `"top_k"`,
            `"top_p"`, `"random"`) or `keras_hub.samplers.Sampler`, as `ARDecoder`'s
            sampler; a dict from `keras.saving.serialize_keras_object(decoder)`; or a
            `Decoder`.
        **options: constructor arguments of the named class.

    Example:
    >>> get("md", num_steps=8)
    MDDecoder(seed=None, num_steps=8, block_length=None, remasking='confidence', temperature=0.5, threshold=None, prefix_cache=False)
    >>> get("greedy").sampler
    'greedy'
    """
    if isinstance(identifier, Decoder):
        if options:
            raise ValueError(
                f"Options go to the decoder's constructor; received a built {identifier!r} "
                f"and options {sorted(options)}."
            )
        return identifier
    if isinstance(identifier, dict):
        decoder = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(decoder, Decoder):
            raise ValueError(f"The config {identifier!r} is not a decoder's.")
        return decoder
    if isinstance(identifier, keras_hub.samplers.Sampler) or identifier in SAMPLER_NAMES:
        return ARDecoder(sampler=identifier, **options)
    if identifier in DECODERS:
        return DECODERS[identifier](**options)
    raise ValueError(
        f"`decoder` must be one of {list(DECODERS)}, a keras-hub sampler name "
        f"{list(SAMPLER_NAMES)}, a keras_hub.samplers.Sampler, or a Decoder "
        f"(ARDecoder, MDDecoder, SpeculativeDecoder); received {identifier!r}."
    )
