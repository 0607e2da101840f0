"""`Decoder`: a decoding method as an object, keras-hub's sampler idea for a model with two faces.

A decoder holds its options, validated once in `__init__`, and knows how to continue a
batch of prompts with a `DualLM` (`generate_rows`). Its subclasses are the decoding
methods: `ARDecoder` (left to right, a keras-hub sampler picking each token),
`MDDecoder` (masked-diffusion unmasking) and `SpeculativeDecoder` (the MD face drafts,
the AR face verifies). `DualLM.generate(inputs, decoder=...)` takes one, as keras-hub's
`CausalLM.compile(sampler=...)` takes a sampler.

`compiled` is the one place where a decoding function is compiled, kept with the model
for later calls, and where the seeds are reset: a decoder with a `seed` gives the same
tokens on every call; without one, its random state advances from call to call.
"""

import keras
import numpy as np

from keras_dualobj.generation.compiled import compile_decoding_function
from keras_dualobj.generation.prompts import check_sequence_length
from keras_dualobj.generation.prompts import check_vocabulary
from keras_dualobj.generation.prompts import encode_prompts
from keras_dualobj.generation.prompts import pad_rows
from keras_dualobj.utils.validation import check_int


class Decoder:
    """Base class of the decoding methods of `DualLM.generate`.

    Subclasses validate their options in `__init__`, return every constructor
    argument from `get_config` and implement `generate_rows`.

    Args:
        seed: optional int >= 0; the same seed gives the same tokens on every call.
    """

    def __init__(self, seed=None):
        if seed is not None:
            check_int("seed", seed, minimum=0)
        self.seed = seed

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self.get_config().items())
        return f"{type(self).__name__}({options})"

    def cache_key(self):
        """What a compiled function depends on: the options, less the seed.

        The seed is written into the random state before each call (see `compiled`),
        so every seed shares one compiled function.
        """
        options = {name: value for name, value in self.get_config().items() if name != "seed"}
        return (type(self).__name__,) + tuple(sorted(options.items()))

    def compiled(self, model, build, *key):
        """The decoding function `build` makes, compiled once per model, options and `key`.

        Args:
            model: the `DualLM`; the function is kept with it (`_decoding_function`),
                so a later decoder with the same options reuses it.
            build: `() -> (step, seed_variables)`: a function of a dict of tensors,
                and the states of the `keras.random.SeedGenerator`s it draws from.
            *key: whatever else `step` closes over (e.g. the stop token ids).

        Returns:
            The compiled function, its random state set to `seed` when one is given.
        """

        def compile_step():
            step, seed_variables = build()
            seed_variables = list(seed_variables)
            return seed_variables, compile_decoding_function(step, model, seed_variables)

        cache = getattr(model, "_decoding_function", None)
        full_key = (self.cache_key(),) + key
        seed_variables, function = compile_step() if cache is None else cache(full_key, compile_step)
        if self.seed is not None:
            # The state `SeedGenerator(seed)` starts from: the same tokens on every call.
            for variable in seed_variables:
                variable.assign(np.array([self.seed, 0], dtype=variable.dtype))
        return function

    def seed_generator(self):
        """A fresh `keras.random.SeedGenerator` for a compiled function's random draws."""
        return keras.random.SeedGenerator(self.seed)

    def generate_rows(self, model, rows, max_length, max_new_tokens, stop_token_ids):
        """Continues prompt rows (a list of int32 arrays); rows may run past a stop token.

        Exactly one of `max_length` (every row continued up to it) and
        `max_new_tokens` (new tokens per row) is given, as `DualLM.generate` resolves
        them. Left to right by default: the prompts right-padded to the final length
        go to `decode`; `MDDecoder` overrides this. Returns a list of int32 arrays.
        """
        token_ids, prompt_mask, ends = continuation_canvas(model, rows, max_length, max_new_tokens)
        token_ids = self.decode(model, token_ids, prompt_mask, stop_token_ids)["token_ids"]
        return [row[:end] for row, end in zip(token_ids, ends)]

    def decode(self, model, token_ids, prompt_mask, stop_token_ids=None):
        """Fills the non-prompt positions of right-padded `token_ids`; a dict with `token_ids`."""
        raise NotImplementedError

    def log_likelihood(self, model, context, continuation):
        """`log p(continuation | context)` of the text this decoder would write, in nats: exact.

        Left to right (`ARDecoder`, `SpeculativeDecoder`): the AR face's
        log-likelihood, of the distribution their samplers temper or truncate.
        `MDDecoder` scores along its own unmasking order (DUEL).

        Args:
            model: a `DualLM`.
            context: a string (`<s>` is prepended) or token ids (start with `<s>`), or
                a list of them.
            continuation: the same kind as `context` (strings are tokenized without
                `<s>`), and as many; each non-empty.

        Returns:
            NumPy float64 `[batch]`, or a float for one pair.
        """
        token_ids, document_ids, fill_positions, single = scoring_canvas(
            model, context, continuation
        )
        scores = self.score_rows(model, token_ids, fill_positions, document_ids)
        log_likelihood = -scores["nll"]
        return float(log_likelihood[0]) if single else log_likelihood

    def score_rows(self, model, token_ids, target_mask=None, document_ids=None):
        """`DualLM.score`'s dict (`nll`, `num_tokens`, ...) of `target_mask`, exact for this decoder.

        Left to right: `model.score(token_ids, "ar", ...)`. The target mask defaults
        to `score`'s (every non-special token after the first of its document).
        """
        return model.score(token_ids, "ar", target_mask=target_mask, document_ids=document_ids)


def scoring_canvas(model, context, continuation):
    """`(token_ids, document_ids, fill_positions, single)` of context + continuation rows.

    Example:
    >>> import numpy as np
    >>> class Model:
    ...     tokenizer, bos_token_id, pad_token_id, vocabulary_size = None, 1, 3, 64
    ...     class backbone:
    ...         vocabulary_size, max_sequence_length = 64, 16
    >>> token_ids, document_ids, fill, single = scoring_canvas(Model, [[1, 20], [1]], [[30], [31, 32]])
    >>> token_ids.tolist(), fill.astype(int).tolist(), single
    ([[1, 20, 30], [1, 31, 32]], [[0, 0, 1], [0, 1, 1]], False)
    """
    contexts, structure = encode_prompts(context, model.tokenizer, model.bos_token_id, name="context")
    continuations, other = encode_prompts(continuation, model.tokenizer, None, name="continuation")
    if structure != other or len(contexts) != len(continuations):
        raise ValueError(
            "`context` and `continuation` must be of the same kind and count; received a "
            f"{structure} of {len(contexts)} and a {other} of {len(continuations)}."
        )
    check_vocabulary(contexts, model.backbone.vocabulary_size, "context")
    check_vocabulary(continuations, model.backbone.vocabulary_size, "continuation")
    rows = [np.concatenate([a, b]).astype("int32") for a, b in zip(contexts, continuations)]
    lengths = np.array([len(row) for row in rows])
    check_sequence_length(model.backbone, int(lengths.max()), "context + continuation")
    token_ids = pad_rows(rows, int(lengths.max()), model.pad_token_id)
    positions = np.arange(token_ids.shape[1])[None, :]
    starts = np.array([len(row) for row in contexts])[:, None]
    fill_positions = (positions >= starts) & (positions < lengths[:, None])
    document_ids = (positions >= lengths[:, None]).astype("int32")
    return token_ids, document_ids, fill_positions, structure in ("ids", "text")


def continuation_canvas(model, rows, max_length, max_new_tokens):
    """Right-padded prompts for left-to-right decoding, and where each row ends.

    With `max_length` every row is continued up to it; with `max_new_tokens` every
    row gets that many new tokens.

    Returns:
        `(token_ids [B, L], prompt_mask [B, L], ends [B])`, NumPy.

    Example:
    >>> import numpy as np
    >>> class Model:
    ...     pad_token_id = 3
    ...     class backbone:
    ...         max_sequence_length = 16
    >>> token_ids, prompt_mask, ends = continuation_canvas(
    ...     Model, [np.array([1, 20]), np.array([1])], None, 2)
    >>> token_ids.tolist(), ends.tolist()
    ([[1, 20, 3, 3], [1, 3, 3, 3]], [4, 3])
    """
    prompt_lengths = np.array([len(row) for row in rows])
    longest = int(prompt_lengths.max())
    if max_length is not None:
        if max_length <= longest:
            raise ValueError(
                f"max_length={max_length} leaves no room after the longest prompt "
                f"({longest} tokens)."
            )
        length, ends = max_length, np.full_like(prompt_lengths, max_length)
        what = f"max_length ({max_length})"
    else:
        length, ends = longest + max_new_tokens, prompt_lengths + max_new_tokens
        what = f"the longest prompt ({longest} tokens) + max_new_tokens ({max_new_tokens})"
    check_sequence_length(model.backbone, length, what)
    token_ids = pad_rows(rows, length, model.pad_token_id)
    prompt_mask = np.arange(length)[None, :] < prompt_lengths[:, None]
    return token_ids, prompt_mask, ends
