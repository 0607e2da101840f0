"""Self-speculative decoding: the MD face drafts, the AR face verifies, one set of weights.

Every iteration of the loop, with `index` the first position not yet decided:

1. **Draft** `k = draft_length` tokens with the masked-diffusion face: the decided
   text, then `k` `<mask>`s at `index .. index + k - 1`. `draft_steps` passes reveal
   the masks left to right in `draft_steps` chunks. Two ways to run a pass
   (`draft_mode`):
   - `"full"`: the MD face as trained, one bidirectional pass over the whole
     canvas (everything after the masks is put in another document, so it is
     invisible). Costs a forward pass over all `L` positions, uncached.
   - `"cached"`: only `[token at index - 1, the k window tokens]` go through the
     model, against the AR KV cache of the decided text (`call_with_cache`, causal).
     An approximation of the MD face: the prefix's keys and values are the AR
     face's (causal, they never see the masks) and a mask sees only the masks
     before it. Costs as little as the verify pass. With the shifted convention its
     first draft token is the AR face's own next token, so it is always accepted.
   How the draft is made never changes the output, only how much of it is accepted.
2. **Verify** the draft with the AR face in one cached causal pass over the `k + 1`
   tokens `[token at index - 1, draft]`: logits `j` give the AR distribution of
   position `index + j` given the draft before it, for `j = 0 .. k`.
3. **Accept** the longest draft prefix the AR face agrees with, plus the AR face's
   own token at the first disagreement (or after the whole draft). Greedy: agree =
   the draft token is the AR argmax, and the extra token is the AR argmax. Sampling:
   the speculative-sampling rule (`speculative_acceptance`). Either way the output
   is the AR face's: greedy token for token, sampling in distribution.
4. **Roll back** the KV cache past rejected tokens. The cache has a fixed shape and
   a causal mask over absolute positions, so rolling back is only *not* moving
   `index` past them: their stale entries lie beyond every later query until the
   next verify pass overwrites them.

One scalar `index` is shared by the batch (the cache is written at one position for
every row), so every row advances by `1 + min(accepted)` per iteration; rows that
accepted more redraft the rest. This keeps the output exact: every committed token
is one the AR face accepted given a committed prefix. Prompts of different lengths
are handled as in `ar_decode`: decoding starts at the shortest prompt and positions
inside a longer prompt keep the prompt's token (and count as agreeing).

The buffer is extended by `k` scratch positions so that every draft window has the
same shape near the end: fixed shapes, one `ops.while_loop`, compiled once per
shape by `compile_decoding_function`. The seed generator's state is threaded
through the loop by a keras-hub `Sampler`'s `run_loop` (as keras-hub's own samplers
do on JAX).
"""

import keras
import keras_hub
from keras import ops
from keras import random

from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.speculative_acceptance import count_leading
from keras_dualobj.generation.speculative_acceptance import speculative_accept
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

# As in md_decoding: never draft `<mask>` (it would look like a position still to fill).
_EXCLUDED_LOGIT = -1e9


DRAFT_MODES = ("cached", "full", "fused")


def check_speculative_options(draft_length, draft_steps, temperature, draft_mode):
    """Validates the options of `speculative_decode`; returns `temperature` as a float.

    Example:
    >>> check_speculative_options(4, 2, 0, "cached")
    0.0
    """
    check_choice("draft_mode", draft_mode, DRAFT_MODES)
    check_int("draft_length", draft_length, minimum=1)
    check_int("draft_steps", draft_steps, minimum=1)
    if draft_mode == "fused" and (draft_steps != 1 or temperature != 0):
        raise ValueError(
            "draft_mode='fused' (one pass verifies a draft and drafts the next) is "
            "greedy with one draft step: it needs temperature=0 and draft_steps=1; "
            f"received temperature={temperature!r}, draft_steps={draft_steps!r}."
        )
    if draft_steps > draft_length:
        raise ValueError(
            f"`draft_steps` must be between 1 and `draft_length` ({draft_length}); "
            f"received draft_steps={draft_steps}."
        )
    return check_float("temperature", temperature, minimum=0.0)


def _draft_logits(functions, canvas, cache, index, options):
    """MD logits `[B, k, V]` predicting positions `index .. index + k - 1` of `canvas`."""
    logits_fn, call_with_cache = functions
    draft_length, _, _, _, shifted, draft_mode = options
    batch_size, length = ops.shape(canvas)[0], ops.shape(canvas)[1]
    if draft_mode == "cached":
        window = ops.slice(canvas, [0, index - 1], [batch_size, draft_length + 1])
        logits, _, _ = call_with_cache(window, cache, index - 1)
        start = 0 if shifted else 1
        return ops.cast(logits, "float32")[:, start : start + draft_length]
    positions = ops.arange(length, dtype="int32")[None, :]
    document_ids = ops.broadcast_to(
        ops.cast(positions >= index + draft_length, "int32"), (batch_size, length)
    )
    bidirectional = ops.full((batch_size,), length, dtype="int32")
    logits = ops.cast(logits_fn(canvas, document_ids, bidirectional), "float32")
    # Shifted MD: the logits at j - 1 predict the token at j.
    start = index - 1 if shifted else index
    vocabulary_size = ops.shape(logits)[2]
    return ops.slice(logits, [0, start, 0], [batch_size, draft_length, vocabulary_size])


def _draft(functions, tokens, cache, prompt_mask, index, options, seed_generator):
    """MD draft of positions `index .. index + k - 1`: `(tokens [B, k], q [B, k, V] or None)`."""
    draft_length, draft_steps, temperature, mask_token_id, _, _ = options
    batch_size, length = ops.shape(tokens)[0], ops.shape(tokens)[1]
    positions = ops.arange(length, dtype="int32")[None, :]
    in_window = ops.logical_and(positions >= index, positions < index + draft_length)
    canvas = ops.where(
        ops.logical_and(in_window, ops.logical_not(prompt_mask)), mask_token_id, tokens
    )
    window_prompt = ops.slice(prompt_mask, [0, index], [batch_size, draft_length])
    offsets = ops.arange(draft_length, dtype="int32")[None, :]
    draft_tokens = ops.slice(tokens, [0, index], [batch_size, draft_length])
    draft_probabilities = None
    chunk_start = 0
    for _, count in reveal_schedule(draft_length, draft_steps):
        logits = _draft_logits(functions, canvas, cache, index, options)
        vocabulary_size = ops.shape(logits)[2]
        is_mask = ops.equal(ops.arange(vocabulary_size, dtype="int32"), mask_token_id)
        logits = ops.where(is_mask, _EXCLUDED_LOGIT, logits)
        in_chunk = ops.logical_and(offsets >= chunk_start, offsets < chunk_start + count)
        chunk_start += count
        if temperature > 0.0:
            uniform = random.uniform(
                ops.shape(logits), minval=1e-20, maxval=1.0, seed=seed_generator
            )
            gumbel = -ops.log(-ops.log(uniform))
            proposals = ops.argmax(logits / temperature + gumbel, axis=-1)
            probabilities = ops.softmax(logits / temperature, axis=-1)
            if draft_probabilities is None:
                draft_probabilities = probabilities
            draft_probabilities = ops.where(
                in_chunk[..., None], probabilities, draft_probabilities
            )
        else:
            proposals = ops.argmax(logits, axis=-1)
        reveal = ops.logical_and(in_chunk, ops.logical_not(window_prompt))
        draft_tokens = ops.where(reveal, ops.cast(proposals, "int32"), draft_tokens)
        canvas = ops.slice_update(canvas, [0, index], draft_tokens)
    return draft_tokens, draft_probabilities


def _verify_and_accept(call_with_cache, state, draft, prompt_mask, options, seed_generator):
    """One cached AR pass over the draft; `(window [B, k + 1], num_accepted [B], cache)`."""
    tokens, cache, index = state
    draft_tokens, draft_probabilities = draft
    draft_length, temperature = options
    batch_size = ops.shape(tokens)[0]
    previous = ops.slice(tokens, [0, index - 1], [batch_size, 1])
    logits, _, cache = call_with_cache(
        ops.concatenate([previous, draft_tokens], axis=1), cache, index - 1
    )
    logits = ops.cast(logits, "float32")
    window_prompt = ops.slice(prompt_mask, [0, index], [batch_size, draft_length + 1])
    forced = window_prompt[:, :draft_length]
    if temperature > 0.0:
        num_accepted, replacements = speculative_accept(
            ops.softmax(logits / temperature, axis=-1),
            draft_probabilities,
            draft_tokens,
            random.uniform((batch_size, draft_length), seed=seed_generator),
            random.uniform((batch_size, draft_length + 1), seed=seed_generator),
            forced=forced,
        )
    else:
        replacements = ops.cast(ops.argmax(logits, axis=-1), "int32")
        agree = ops.equal(draft_tokens, replacements[:, :draft_length])
        num_accepted = count_leading(ops.logical_or(agree, forced))
    offsets = ops.arange(draft_length + 1, dtype="int32")[None, :]
    padded_draft = ops.pad(draft_tokens, [[0, 0], [0, 1]])
    window = ops.where(offsets < num_accepted[:, None], padded_draft, replacements)
    prompt_window = ops.slice(tokens, [0, index], [batch_size, draft_length + 1])
    window = ops.where(window_prompt, prompt_window, window)
    return window, num_accepted, cache


def speculative_decode(
    call_with_cache,
    build_cache,
    logits_fn,
    inputs,
    draft_length,
    mask_token_id,
    draft_steps=1,
    temperature=0.0,
    shifted=True,
    stop_token_ids=None,
    loop_runner=None,
    model=None,
    draft_mode="cached",
):
    """Fills every non-prompt position of `inputs["token_ids"]` by self-speculative decoding.

    Compilable (see `compile_decoding_function`; pass `loop_runner.variables` as
    its `seed_variables`).

    Args:
        call_with_cache: `(token_ids [B, n], cache, cache_update_index) -> (logits,
            hidden_states, cache)`, e.g. `DualLM.call_with_cache`.
        build_cache: `token_ids -> (hidden_states, cache)`, e.g. `DualLM._build_cache`.
        logits_fn: `(token_ids, document_ids, prefix_lengths) -> logits`, e.g.
            `DualLM.logits`; called with fully bidirectional attention for the draft.
        inputs: dict with `token_ids` int32 `[B, L]` (prompts right-padded to the
            final length) and `prompt_mask` bool `[B, L]`; every prompt holds at
            least one token.
        draft_length: int >= 1, tokens drafted per iteration (`k`).
        mask_token_id: id of `<mask>`.
        draft_steps: int in `[1, k]`, MD passes per draft (left to right chunks).
        temperature: float >= 0; 0 is greedy (the AR argmax), otherwise the AR
            face's `softmax(logits / temperature)` is sampled exactly.
        shifted: whether the MD logits at `j - 1` predict the token at `j`.
        stop_token_ids: optional tuple of ids; the loop ends once every row has
            produced one (positions after it are left to the caller to drop).
        loop_runner: a `keras_hub.samplers.Sampler` whose `seed_generator` the
            sampling draws from and whose `run_loop` runs the loop (see
            `make_loop_runner`); required for `temperature > 0`.
        model: the model, so that the JAX loop can thread its variables.
        draft_mode: `"cached"` (the masks against the AR KV cache) or `"full"` (a
            bidirectional MD pass over the whole canvas); see the module docstring.

    Returns:
        dict: `token_ids` int32 `[B, L]`, `num_verify_passes` (AR passes over a
        draft, the cache-seeding pass not counted), `num_positions` (positions
        decided from the shortest prompt on) and `num_accepted` (sum over passes and
        rows of the draft tokens the AR face accepted), int32 scalars.

    Example:
    >>> import numpy as np, keras_hub
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> from keras_dualobj.generation import ar_decode
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> inputs = {"token_ids": np.array([[1, 20, 3, 3, 3, 3]], "int32"),
    ...           "prompt_mask": np.array([[1, 1, 0, 0, 0, 0]], bool)}
    >>> outputs = speculative_decode(model.call_with_cache, model._build_cache,
    ...                              model.logits, inputs, draft_length=2, mask_token_id=4)
    >>> greedy = ar_decode(model.call_with_cache, model._build_cache, inputs,
    ...                    keras_hub.samplers.GreedySampler())
    >>> np.asarray(outputs["token_ids"]).tolist() == np.asarray(greedy).tolist()
    True
    """
    temperature = check_speculative_options(draft_length, draft_steps, temperature, draft_mode)
    if temperature > 0.0 and loop_runner is None:
        raise ValueError(
            "Sampling (temperature > 0) needs a `loop_runner` holding the seed "
            "generator; received loop_runner=None (see `make_loop_runner`)."
        )
    loop_runner = make_loop_runner() if loop_runner is None else loop_runner
    seed_generator = loop_runner.seed_generator
    token_ids = ops.cast(inputs["token_ids"], "int32")
    prompt_mask = ops.cast(inputs["prompt_mask"], "bool")
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    # `k` scratch positions so that every draft window (and the token after it) fits.
    tokens = ops.pad(token_ids, [[0, 0], [0, draft_length]])
    prompt_mask = ops.pad(prompt_mask, [[0, 0], [0, draft_length]])
    _, cache = build_cache(tokens)
    start = ops.min(ops.sum(ops.cast(inputs["prompt_mask"], "int32"), axis=-1))
    draft_options = (draft_length, draft_steps, temperature, mask_token_id, shifted, draft_mode)
    functions = (logits_fn, call_with_cache)
    verify_options = (draft_length, temperature)
    positions = ops.arange(length + draft_length, dtype="int32")[None, :]
    stop_ids = None if not stop_token_ids else ops.array(stop_token_ids, dtype="int32")

    def cond(tokens, cache, index, num_passes, num_accepted):
        not_done = index < length
        if stop_ids is None:
            return not_done
        generated = ops.logical_and(ops.logical_not(prompt_mask), positions < index)
        generated = ops.logical_and(generated, positions < length)
        is_stop = ops.any(ops.equal(tokens[..., None], stop_ids), axis=-1)
        finished = ops.all(ops.any(ops.logical_and(is_stop, generated), axis=-1))
        return ops.logical_and(not_done, ops.logical_not(finished))

    def body(tokens, cache, index, num_passes, num_accepted):
        draft = _draft(
            functions, tokens, cache, prompt_mask, index, draft_options, seed_generator
        )
        window, accepted, cache = _verify_and_accept(
            call_with_cache, (tokens, cache, index), draft, prompt_mask, verify_options,
            seed_generator,
        )
        advance = ops.min(accepted) + 1
        offsets = ops.arange(draft_length + 1, dtype="int32")[None, :]
        current = ops.slice(tokens, [0, index], [batch_size, draft_length + 1])
        tokens = ops.slice_update(tokens, [0, index], ops.where(offsets < advance, window, current))
        return (
            tokens,
            cache,
            index + advance,
            num_passes + 1,
            num_accepted + ops.sum(accepted),
        )

    zero = ops.convert_to_tensor(0, dtype="int32")
    tokens, _, index, num_passes, num_accepted = loop_runner.run_loop(
        cond,
        body,
        loop_vars=(tokens, cache, ops.cast(start, "int32"), zero, zero),
        maximum_iterations=length - start,
        model=model,
    )
    return {
        "token_ids": tokens[:, :length],
        "num_verify_passes": num_passes,
        "num_positions": ops.minimum(index, length) - start,
        "num_accepted": num_accepted,
    }


def make_loop_runner(seed=None):
    """A keras-hub `Sampler` holding a `SeedGenerator(seed)`, to run `speculative_decode`.

    Its `run_loop` threads the seed state through the loop on JAX; `variables`
    lists that state for `compile_decoding_function`.

    Example:
    >>> len(make_loop_runner(seed=0).variables)
    1
    """
    runner = keras_hub.samplers.Sampler()
    # Assigned as an attribute so that the Sampler tracks it in `variables`.
    runner.seed_generator = keras.random.SeedGenerator(seed, name="speculative_seed")
    return runner
