"""
Title: Fast decoding with both faces
Author: keras-dualobj contributors
Date created: 2026/12/03
Last modified: 2026/12/07
Description: KV-cached AR decoding, MD decoding by steps, threshold and prefix cache, and self-speculative decoding where the MD face drafts and the AR face verifies.
Accelerator: None
"""

"""
## Introduction

A dual-objective model is one set of weights with two faces: an autoregressive (AR)
model and a masked-diffusion (MD) model. Each face decodes in its own way, and
together they decode in a way neither could alone:

- **AR with a KV cache**: one causal pass per new token, each reusing the keys and
  values of the text before it;
- **MD decoding**: the new positions start as `<mask>` and a few are revealed per
  bidirectional pass (a fixed number of *steps*, or every position whose proposal is
  more probable than a *threshold* τ), optionally in semi-autoregressive blocks with a
  *prefix KV cache*;
- **self-speculative decoding**: the MD face drafts `k` tokens at once, the AR face
  checks them all in one cached pass and keeps the longest prefix it agrees with, plus
  its own next token. The output is exactly the AR face's, at several tokens per AR
  pass; how many depends on how often the two faces agree (the *acceptance rate*).

Each is a decoder object (`keras_dualobj.decoders`): `ARDecoder`, `MDDecoder` and
`SpeculativeDecoder` hold their options, and `generate(..., decoder=...)` runs them.
This guide trains a tiny byte-level model for a few seconds and runs every decoder on
it, counting passes and timing them. At this size the timings are dominated by per-pass
overhead, and the model has learned one paragraph by heart: the counts (tokens per
pass, passes per text) and the exactness checks are the point. `benchmarks/speculative_decoding.py`
measures the same decoders on a larger model trained for minutes.
"""

"""
## Setup
"""

import time

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import numpy as np

from keras_dualobj import DualBackbone
from keras_dualobj import DualLM
from keras_dualobj.data import ByteTokenizer
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from keras_dualobj.decoders import SpeculativeDecoder

keras.utils.set_random_seed(0)

"""
## A tiny dual model

To see the faces agree and disagree within seconds of training, the model learns one
short text by heart: windows of 64 bytes of a paragraph of CPython's documentation
(always available offline), half of every batch trained as AR and half as MD
(`ar_fraction=0.5`). The prompts are the first bytes of two windows.
"""

from pydoc_data import topics

tokenizer = ByteTokenizer()
text = " ".join(topics.topics["assert"].split())[:1200]
ids = np.array(tokenizer.tokenize(text), "int32")
rng = np.random.default_rng(0)
starts = rng.integers(0, len(ids) - 63, 1024)
rows = np.stack([np.concatenate([[tokenizer.bos_token_id], ids[s : s + 63]]) for s in starts])

backbone = DualBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2,
                        num_heads=2, hidden_dim=64, intermediate_dim=128,
                        max_sequence_length=128)
model = DualLM(backbone, ar_fraction=0.5, seed=0)
model.compile(optimizer=keras.optimizers.AdamW(3e-3))
model.fit(rows, batch_size=16, epochs=2, verbose=0)

prompt_length, num_new = 16, 48
prompts = [rows[0, :prompt_length], rows[1, :prompt_length]]


def timed(function, repeats=1):
    """Median seconds of `repeats` calls after one untimed call (compilation)."""
    result = function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return result, float(np.median(seconds))


"""
## AR decoding with a KV cache

`ARDecoder` seeds the cache with one pass over the prompts, then runs one
single-token cached pass per new token, inside one compiled loop.
`ARDecoder(use_cache=False)` recomputes the whole causal pass for every token: same
tokens, more work. Here the sampler is greedy (`ARDecoder("greedy")`; `generate`
samples top-k by default), so that the speculative decoders below can be checked
against these exact tokens.
"""

ar_tokens, ar_seconds = timed(
    lambda: model.generate(prompts, max_new_tokens=num_new, stop_token_ids=None,
                           decoder=ARDecoder("greedy")))
uncached, uncached_seconds = timed(
    lambda: model.generate(prompts, max_new_tokens=num_new, stop_token_ids=None,
                           decoder=ARDecoder("greedy", use_cache=False)))
assert all((a == b).all() for a, b in zip(ar_tokens, uncached))
print(f"AR, cached:   {ar_seconds * 1e3:7.1f} ms for {num_new} tokens x 2 rows")
print(f"AR, uncached: {uncached_seconds * 1e3:7.1f} ms (same tokens)")
print(repr(tokenizer.detokenize(ar_tokens[0][prompt_length:].tolist())))

"""
## MD decoding: steps, threshold, prefix cache

By steps (`MDDecoder(num_steps=...)`): `num_steps` bidirectional passes over the
whole canvas, each revealing a fixed share of the masks (the most confident first;
`MDDecoder`'s default blocks are the shortest the steps allow, here one block so that
every mask competes). Fewer steps is faster and, since positions revealed in the same
pass do not see each other, usually worse. The proposals are argmax (`temperature=0`)
in every decoder below, so the AR loss compares the decoders, not the sampling.

By threshold (`MDDecoder(threshold=τ)`, Fast-dLLM's parallel unmasking): each pass reveals every masked
position of the current block whose proposal has probability above τ, and at least
one, so the number of passes adapts to how sure the model is. τ = 1 is one position
per pass, τ = 0 a whole block per pass.

With the prefix cache (`prefix_cache=True`), each block of `block_length` new
positions starts with one pass over the canvas that fills a KV cache, and its later
passes run only the block against that cache. To keep the cached keys and values
exact, attention becomes *block-causal*: the prompt and finished blocks attend only
among themselves, the block attends to them and to itself, later blocks are unseen.
The model was trained with full bidirectional attention, so this is an approximation;
we measure what it costs with the AR face: the mean AR loss (nats per token) of the
text each decoder wrote (lower reads more like the AR face's own text).
"""


def ar_loss(rows_out):
    """Mean AR negative log-likelihood of the new tokens, scored by the model's AR face."""
    token_ids = np.stack(rows_out)
    logits = np.asarray(keras.ops.convert_to_numpy(model(token_ids)), "float64")
    logits -= logits.max(-1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = token_ids[:, prompt_length:]
    predicted = log_probabilities[:, prompt_length - 1 : -1]
    return float(-np.take_along_axis(predicted, targets[..., None], -1).mean())


print(f"{'decoder':34s} {'ms':>7s} {'AR loss':>8s}")
print(f"{'ar (cached)':34s} {ar_seconds * 1e3:7.1f} {ar_loss(ar_tokens):8.3f}")
md_runs = {
    "md, 48 steps, one block": dict(num_steps=48, block_length=num_new),
    "md, threshold 0.7, blocks of 16": dict(threshold=0.7, block_length=16),
    "md, threshold 0.7, + prefix cache": dict(threshold=0.7, block_length=16,
                                               prefix_cache=True),
    "md, 48 steps, blocks 16, + cache": dict(num_steps=48, block_length=16,
                                              prefix_cache=True),
}
for name, options in md_runs.items():
    decoder = MDDecoder(temperature=0.0, **options)
    tokens, seconds = timed(lambda d=decoder: model.generate(
        prompts, max_new_tokens=num_new, stop_token_ids=None, decoder=d))
    print(f"{name:34s} {seconds * 1e3:7.1f} {ar_loss(tokens):8.3f}")

"""
The cache is exact for its mask: `MDDecoder.fill_blocks`, what `generate` runs with
`prefix_cache=True`, takes `use_cache=False` for the same decoder without the cache (a
full block-causal pass at every step); it gives the same tokens, and counts how many
passes each way took.
"""

length = prompt_length + num_new
canvas = np.full((2, length), model.mask_token_id, "int32")
canvas[:, :prompt_length] = np.stack(prompts)
lengths = np.full((2,), prompt_length)
block_decoder = MDDecoder(block_length=16, threshold=0.7, temperature=0.0, prefix_cache=True)
cached = block_decoder.fill_blocks(model, canvas, lengths)
reference = block_decoder.fill_blocks(model, canvas, lengths, use_cache=False)
assert (cached["token_ids"] == reference["token_ids"]).all()
for name, result in (("cached:  ", cached), ("uncached:", reference)):
    print(name, {key: result[key] for key in ("num_full_passes", "num_window_passes")})

"""
## Self-speculative decoding: the MD face drafts, the AR face verifies

`SpeculativeDecoder(draft_length=k)` loops: draft `k` tokens with the MD
face (`<mask>`s after the decided text), verify them with one cached AR pass over
the draft, keep the longest agreeing prefix plus the AR face's token at the first
disagreement, and roll the cache back past rejected tokens (by not advancing the
write index). Greedy output is the AR greedy output token for token; with
`temperature > 0` the speculative-sampling acceptance rule keeps the AR face's
distribution exactly.

Three ways to draft (`SpeculativeDecoder(draft_mode=...)`); none changes the output:

- `"full"`: the MD face as trained, a bidirectional pass over the whole text;
- `"cached"` (default): the masks against the AR KV cache, a pass as cheap as the
  verification;
- `"fused"` (greedy): no separate draft pass at all: the verification pass carries
  `k + 1` extra `<mask>`s after the draft, whose outputs are the next draft.

`SpeculativeDecoder.decode`, what `generate` runs on the right-padded prompts, returns
the counts too: `tokens_per_verify_pass` (new tokens per
AR pass over a draft) and `draft_acceptance_rate` (the share of drafted tokens the AR
face accepted), which measures how much the two faces agree.
"""

token_ids = np.full((2, length), model.pad_token_id, "int32")
token_ids[:, :prompt_length] = np.stack(prompts)
prompt_mask = np.arange(length)[None, :] < prompt_length
prompt_mask = np.broadcast_to(prompt_mask, token_ids.shape).copy()
ar_reference = np.stack(ar_tokens)

print(f"{'draft':12s} {'ms':>7s} {'vs AR':>6s} {'tok/pass':>8s} {'accept':>7s} same")
for draft_mode in ("full", "cached", "fused"):
    for draft_length in (2, 8):
        decoder = SpeculativeDecoder(draft_length=draft_length, draft_mode=draft_mode)
        stats, seconds = timed(lambda d=decoder: d.decode(model, token_ids, prompt_mask))
        same = bool((stats["token_ids"] == ar_reference).all())
        assert same
        print(f"{draft_mode + ' k=' + str(draft_length):12s} {seconds * 1e3:7.1f} "
              f"{ar_seconds / seconds:5.2f}x {stats['tokens_per_verify_pass']:8.2f} "
              f"{stats['draft_acceptance_rate']:7.2f} {same}")

"""
The same through `generate`, and with sampling (the AR face's distribution, not its
argmax; the seed makes it reproducible):
"""

fast = model.generate(prompts, max_new_tokens=num_new, stop_token_ids=None,
                      decoder=SpeculativeDecoder(draft_length=4))
assert all((a == b).all() for a, b in zip(fast, ar_tokens))
sampled = model.generate(prompts, max_new_tokens=num_new, stop_token_ids=None,
                         decoder=SpeculativeDecoder(draft_length=4, temperature=0.8, seed=1))
print(repr(tokenizer.detokenize(sampled[0][prompt_length:].tolist())))

"""
## What the numbers mean

- **Tokens per pass** is what speculative decoding buys: with `k` drafted tokens and
  an acceptance rate `a`, each verification commits between 1 and `k + 1` tokens.
  `"full"` and `"cached"` pay a draft pass too, so they need more than two tokens per
  iteration to beat AR decoding; `"fused"` pays one pass per iteration but drafts
  less well (its draft cannot see the AR face's bonus token).
- **Wall time** follows tokens per pass only where a pass costs about the same for 1
  and for `2k + 2` query tokens, which holds for small models on a CPU; the
  per-iteration bookkeeping (acceptance, rollback) adds to each pass. Measure on
  your model and machine: `python benchmarks/speculative_decoding.py`.
- **The acceptance rate** is a figure of the model, not of the decoder: it is how
  often the MD face's guess is the AR face's choice. Models trained at a larger
  `ar_fraction` have a weaker MD face; the benchmark reports the rate for each.
- **MD with a threshold** trades quality for passes; the prefix cache trades a little
  more quality (block-causal attention) for cheaper passes.
"""
