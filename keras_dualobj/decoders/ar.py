"""`ARDecoder`: the causal face, left to right with a KV cache, a keras-hub sampler picking each token."""

import keras
import keras_hub
import numpy as np
from keras import ops

from keras_dualobj.decoders.base import Decoder
from keras_dualobj.generation.ar_decoding import ar_decode
from keras_dualobj.generation.ar_decoding import ar_decode_uncached
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float

SAMPLER_NAMES = ("greedy", "top_k", "top_p", "random")
# Measured to read best (benchmarks/generation_defaults.py); keras-hub's default is 1.0.
DEFAULT_TEMPERATURE = 0.5


@keras.saving.register_keras_serializable(package="keras_dualobj")
class ARDecoder(Decoder):
    """Autoregressive decoding: one cached causal pass per new token.

    The loop is keras-hub's: `keras_hub.samplers.get` makes the sampler that picks
    each token. The defaults were measured (`benchmarks/generation_defaults.py`,
    `docs/generation.md`): on models of the byte presets, greedy decoding loops
    (`"___()" "___()"`), and top-k sampling (k = 5) at temperature 0.5 wrote the most
    readable text. Pass `sampler="greedy"` for argmax decoding, or `seed` for
    reproducible samples.

    Args:
        sampler: `"greedy"`, `"top_k"` (k = 5), `"top_p"` (p = 0.1), `"random"`, or a
            `keras_hub.samplers.Sampler` (for another k or p, e.g.
            `keras_hub.samplers.TopKSampler(k=40, temperature=0.8)`).
        temperature: float > 0 for a named sampler; `None` is 0.5, measured to read
            best (keras-hub's own default is 1.0). A sampler instance carries its own.
        seed: optional int >= 0.
        use_cache: `False` recomputes the full causal pass for every token (the
            benchmark's baseline, and a reference for the cache).

    Example:
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> decoder = ARDecoder("greedy")
    >>> cached = model.generate([1, 20, 21], max_new_tokens=4, decoder=decoder)
    >>> uncached = model.generate([1, 20, 21], max_new_tokens=4,
    ...                           decoder=ARDecoder("greedy", use_cache=False))
    >>> cached.tolist() == uncached.tolist(), len(cached)
    (True, 7)
    >>> ARDecoder.from_config(decoder.get_config())
    ARDecoder(seed=None, sampler='greedy', temperature=0.5, use_cache=True)
    """

    def __init__(self, sampler="top_k", temperature=None, seed=None, use_cache=True):
        super().__init__(seed)
        if isinstance(sampler, keras_hub.samplers.Sampler):
            if temperature is not None or seed is not None:
                raise ValueError(
                    "Set `temperature` and `seed` on the sampler instance itself; received a {type(sampler).__name__} with "
                    f"temperature={temperature!r}, seed={seed!r}."
                )
        else:
            if not isinstance(sampler, str):
                raise TypeError(
                    f"`sampler` must be one of {list(SAMPLER_NAMES)} or a "
                    f"keras_hub.samplers.Sampler; received {sampler!r}."
                )
            check_choice("sampler", sampler, SAMPLER_NAMES)
            temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
            temperature = check_float("temperature", temperature, minimum=0.0)
            if temperature == 0.0:
                raise ValueError(
                    "`temperature` must be > 0 for AR sampling (use sampler='greedy' for "
                    f"argmax decoding); received temperature={temperature!r}."
                )
        if not isinstance(use_cache, bool):
            raise TypeError(f"`use_cache` must be True or False; received {use_cache!r}.")
        self.sampler = sampler
        self.temperature = temperature
        self.use_cache = use_cache

    def get_config(self):
        sampler = self.sampler
        if not isinstance(sampler, str):
            sampler = keras.saving.serialize_keras_object(sampler)
        return {
            **super().get_config(),
            "sampler": sampler,
            "temperature": self.temperature,
            "use_cache": self.use_cache,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("sampler"), dict):
            config["sampler"] = keras_hub.samplers.get(config["sampler"])
        return cls(**config)

    def cache_key(self):
        if isinstance(self.sampler, str):
            return super().cache_key()
        # An instance carries its own state: its compiled function is its own.
        return (type(self).__name__, "instance", id(self.sampler), self.use_cache)

    def make_sampler(self):
        """The keras-hub sampler this decoder runs (a new one for a named sampler)."""
        if isinstance(self.sampler, str):
            config = {"temperature": self.temperature}
            return keras_hub.samplers.get({"class_name": self.sampler, "config": config})
        return self.sampler

    def decode(self, model, token_ids, prompt_mask, stop_token_ids=None):
        """Fills every non-prompt position of right-padded `token_ids`, left to right.

        Args:
            model: a `DualLM`.
            token_ids: int32 `[B, L]`, prompts right-padded to the final length.
            prompt_mask: bool `[B, L]`, True on prompt tokens.
            stop_token_ids: optional tuple of ids; decoding ends once every row has
                produced one.

        Returns:
            dict with NumPy int32 `token_ids` `[B, L]`.
        """
        stop_token_ids = tuple(stop_token_ids) if stop_token_ids else None

        def build():
            sampler = self.make_sampler()
            if self.use_cache:
                def step(inputs):
                    return ar_decode(model.call_with_cache, model._build_cache, inputs,
                                     sampler, stop_token_ids, model=model)
            else:
                def step(inputs):
                    return ar_decode_uncached(model.logits, inputs, sampler, stop_token_ids,
                                              model=model)
            return step, sampler.variables

        function = self.compiled(model, build, stop_token_ids)
        inputs = {"token_ids": np.asarray(token_ids, "int32"),
                  "prompt_mask": np.asarray(prompt_mask, bool)}
        return {"token_ids": ops.convert_to_numpy(function(inputs))}
