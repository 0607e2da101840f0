"""Decoding methods as objects: `ARDecoder`, `MDDecoder`, `SpeculativeDecoder`.

`DualLM.generate(inputs, max_length, decoder=...)` takes one of them, a name
(`decoders.get`), or uses the one given to `compile(decoder=...)` (by default
`ARDecoder()`). Each holds its options, validated once, and serialises with
`get_config`, as keras-hub's samplers do.
"""

from keras_dualobj.utils.lazy import lazy_exports

_EXPORTS = {
    "Decoder": "keras_dualobj.decoders.base",
    "ARDecoder": "keras_dualobj.decoders.ar",
    "MDDecoder": "keras_dualobj.decoders.md",
    "SpeculativeDecoder": "keras_dualobj.decoders.speculative",
    "shortest_block_length": "keras_dualobj.decoders.md",
    "DECODERS": "keras_dualobj.decoders.registry",
    "get": "keras_dualobj.decoders.registry",
}
# Loaded on first use: the command line reads the decoders' arguments
# (`keras_dualobj.decoders.signatures`) before Keras is imported.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
