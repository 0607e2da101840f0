"""Decoding kernels of a dual model: KV-cached AR sampling, masked-diffusion unmasking
(fixed schedule, confidence threshold, prefix block cache) and self-speculative decoding.

These functions take the model's call functions (`call_with_cache`, `_build_cache`,
`logits`), as keras-hub samplers take `next`; the decoder objects of
`keras_dualobj.decoders` compile and run them.
"""

from keras_dualobj.generation.ar_decoding import ar_decode
from keras_dualobj.generation.ar_decoding import ar_decode_uncached
from keras_dualobj.generation.compiled import DecodingFunctionCache
from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.md_block_cache import block_causal_mask
from keras_dualobj.generation.md_block_cache import md_block_cache_decode
from keras_dualobj.generation.md_decoding import md_decode
from keras_dualobj.generation.md_decoding import md_decode_step
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.md_threshold_decoding import md_threshold_decode
from keras_dualobj.generation.speculative import speculative_decode
