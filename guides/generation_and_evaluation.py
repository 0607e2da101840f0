"""
Title: Generation and evaluation with a dual-objective language model
Author: keras-dualobj contributors
Date created: 2026/11/27
Last modified: 2026/12/07
Description: Decode autoregressively or by masked diffusion, infill, and score one model in AR, prefix-LM and MD modes.
Accelerator: None
"""

"""
## Introduction

A dual-objective model (Samuel & Charpentier, arXiv 2512.14549) is one Transformer
trained both as an autoregressive (AR) model and as a masked-diffusion (MD) model. It
therefore has two faces at inference time, and `DualLM` exposes both:

- **generation**: AR decoding with a KV cache and keras-hub samplers, MD decoding that
  unmasks a canvas over a few steps (with confidence or random remasking and
  semi-autoregressive blocks), and infilling between a prefix and a suffix;
- **scoring**: exact AR log-likelihood, exact prefix-LM log-likelihood (bidirectional
  over the prompt, causal over the completion), and the MD upper bound on the negative
  log-likelihood with a stated Monte-Carlo estimator; and zero-shot multiple choice in
  any of the three modes.

This guide trains a tiny byte-level model for a few seconds on text that ships with
Python, then uses every one of these. It runs in under a minute on a CPU, on any Keras
backend. A model trained for seconds writes mostly spaces and frequent letters and
scores near chance: the procedures are the point, not the numbers.
"""

"""
## Setup
"""

import json
import os
import tempfile

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import keras_hub
import numpy as np

from keras_dualobj import DualBackbone
from keras_dualobj import DualLM
from keras_dualobj.cli import main as keras_dualobj_cli
from keras_dualobj.data import prepare_data
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder

keras.utils.set_random_seed(0)

"""
## Train a tiny dual model for a few seconds

`prepare_data` reads CPython's own documentation text (always available offline),
tokenizes it with the byte-level tokenizer (id = 16 + byte; `<s>`=1, `</s>`=2,
`<pad>`=3, `<mask>`=4), packs documents into rows of 64 tokens and keeps a held-out
tail. Half of every batch trains the AR objective and half the MD objective
(`ar_fraction=0.5`). The model carries its tokenizer, so everything below takes and
returns strings.
"""

data = prepare_data(
    "builtin",
    tokenizer="byte",
    sequence_length=64,
    batch_size=32,
    unique_tokens=2048 * 64,
    validation_fraction=0.02,
    seed=0,
    verbose=False,
)
tokenizer = data.tokenizer
backbone = DualBackbone(
    vocabulary_size=tokenizer.vocabulary_size(),
    num_layers=2,
    num_heads=4,
    hidden_dim=64,
    intermediate_dim=192,
    max_sequence_length=128,
)
model = DualLM(backbone, ar_fraction=0.5, seed=0, tokenizer=tokenizer)
model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=0.01))
history = model.fit(data.train_dataset, shuffle=False, verbose=0)  # already shuffled
print({name: round(values[-1], 3) for name, values in history.history.items()})

"""
## AR generation

`generate(prompts)` continues each prompt token by token with a KV cache: its default
decoder is `ARDecoder()` (decoders, in `keras_dualobj.decoders`, are the decoding
methods as objects, as keras-hub's samplers are; `generate(..., decoder=...)` takes
one). The loop (a keras-hub sampler) is compiled once per batch shape — `tf.function` with
XLA on TensorFlow, `jax.jit` on JAX, eager under `no_grad` on PyTorch — and reused by
later calls with the same shapes. Prompts of different lengths share a batch; each row
stops after its first stop token (`</s>` by default). By default each token is sampled
from the five most probable at temperature 0.5 (keras-hub's `"top_k"` sampler): on
byte-level models greedy decoding repeats itself, and this read best
(`benchmarks/generation_defaults.py`); a decoder's `seed` gives the same text every
time.
"""

prompts = ["The import statement", "A class definition"]
for completion in model.generate(prompts, max_new_tokens=48, decoder=ARDecoder(seed=0)):
    print(repr(completion))

"""
Any keras-hub sampler works: name one (`"greedy"`, `"top_k"`, `"top_p"`, `"random"`)
in an `ARDecoder` with a `temperature` and a `seed`, or pass an instance (a sampler
name alone, `decoder="greedy"`, is short for `ARDecoder("greedy")`).
"""

print(repr(model.generate("The import statement", max_new_tokens=48, decoder="greedy")))
sampler = keras_hub.samplers.TopPSampler(p=0.9, temperature=0.8, seed=2)
print(repr(model.generate("The import statement", max_new_tokens=48,
                          decoder=ARDecoder(sampler))))

"""
Token ids work too (start them with `<s>`, id 1); the result is then an id array.
`strip_prompt=True` keeps only the new part.
"""

ids = np.concatenate([[1], tokenizer.tokenize("for x in")])
print(model.generate(ids, max_new_tokens=8, strip_prompt=True, stop_token_ids=None))

"""
## MD generation

`MDDecoder` starts from `max_new_tokens` `<mask>` tokens after the prompt and reveals
them over `num_steps` bidirectional forward passes. At every step the model proposes a
token for every masked position; the most confident proposals (`remasking=
"confidence"`) or random ones (`"random"`) are kept. With `block_length`, the new
tokens are decoded in blocks from left to right (semi-autoregressive decoding). The
model's MD convention is *shifted* (masked next-token prediction), so the token at
position `j` is read from the logits at `j - 1`.

By default the blocks are as short as the steps allow (one token each with one step
per token, four with 8 steps for 32 tokens) and proposals are sampled at temperature
0.5: in one block, a byte-level model fills the far positions with spaces first, its
most confident guess where it sees no context, and the canvas ends up blank
(`block_length=32` below; the table in `docs/generation.md`).
"""

for num_steps, block_length in ((32, None), (32, 32), (8, None), (8, 8)):
    completion = model.generate(
        "The import statement",
        max_new_tokens=32,
        stop_token_ids=None,
        decoder=MDDecoder(num_steps=num_steps, block_length=block_length, seed=0),
    )
    print(f"steps={num_steps:2d} block_length={block_length or 'default'}: {completion!r}")

"""
`MDDecoder.fill` is the primitive underneath: it fills every `<mask>` of a batch of
token ids and tells you at which step each position was revealed. Here, with two blocks
of 8 and argmax proposals (`temperature=0.0`), no position of the second block is
touched before the first is complete:
"""

canvas = np.concatenate([[1], tokenizer.tokenize("The "), np.full(16, 4)])[None]
decoded = MDDecoder(num_steps=16, block_length=8, temperature=0.0).fill(model, canvas)
print(decoded["reveal_step"][0, 5:])
print(repr(tokenizer.detokenize(decoded["token_ids"][0, 1:])))

"""
## Infilling

`infill(prefix, suffix, span_length, decoder=MDDecoder(...))` masks a span between
two given pieces of text and decodes it by MD, attending to both sides. The prefix and
suffix come back unchanged. Here in one block of argmax proposals:
"""

print(repr(model.infill("The class ", " is a statement.", span_length=12,
                        decoder=MDDecoder(temperature=0.0, block_length=12))))

"""
## Scoring: AR, prefix-LM and MD

`score(token_ids, mode)` returns, per row, the negative log-likelihood of the scored
tokens (`nll`, in nats), how many were scored and a standard error:

- `"ar"`: causal attention, exact;
- `"prefix"`: bidirectional over the first `prefix_lengths[b]` tokens, causal after —
  exact for the tokens after the prefix, with no extra training (the paper reports
  that it beats plain AR);
- `"md"`: the masked-diffusion upper bound (ELBO), estimated with `num_samples`
  masks per row. The estimator is stated in `keras_dualobj.evaluation.md_elbo`:
  mask counts `k` stratified so that they are exactly uniform on `1..n`, `k` targets
  masked uniformly at random, weight `n / k`, masks drawn by NumPy from `seed` (the
  same on every backend); the standard error treats the samples as independent, so
  it is conservative.
"""

held_out = data.validation_rows.token_ids[:16]
documents = data.validation_rows.document_ids[:16]
for mode, options in (("ar", {}), ("md", {"num_samples": 4, "seed": 0})):
    result = model.score(held_out, mode, document_ids=documents, **options)
    per_token = result["nll"].sum() / result["num_tokens"].sum()
    error = np.sqrt((result["standard_error"] ** 2).sum()) / result["num_tokens"].sum()
    print(f"{mode}: {per_token:.3f} ± {error:.3f} nats/byte, perplexity {np.exp(per_token):.2f}")

"""
Prefix-LM scoring needs a split between a prompt and what is scored. Scoring the
second half of every row given the first, both ways, on exactly the same tokens:
"""

prefix_lengths = np.full((len(held_out),), 32)
prefix = model.score(held_out, "prefix", prefix_lengths=prefix_lengths, document_ids=documents)
second_half = (np.arange(64) >= 32) & (held_out > 4) & (documents == documents[:, 31:32])
causal = model.score(held_out, "ar", target_mask=second_half, document_ids=documents)
print(
    f"prefix-LM {prefix['nll'].sum() / prefix['num_tokens'].sum():.4f}, "
    f"causal {causal['nll'].sum() / causal['num_tokens'].sum():.4f} nats/byte "
    f"({prefix['num_tokens'].sum()} and {causal['num_tokens'].sum()} bytes)"
)

"""
## Zero-shot multiple choice

Benchmarks such as HellaSwag, ARC or PIQA are multiple choice: pick the completion the
model finds most likely. `evaluate_multiple_choice` reads a JSON Lines file with one
`{"context", "choices", "label"}` object per line and scores every choice in each mode;
`length_normalization="tokens"` (or `"bytes"`) divides by the choice's length.

We build a small file from the held-out text: the true continuation of a sentence
against the continuations of other sentences.
"""

held_out_ids = data.validation_rows.token_ids.reshape(-1)
held_out_text = tokenizer.detokenize(held_out_ids[held_out_ids >= 16])
sentences = [s.strip() for s in held_out_text.split(". ") if 40 < len(s.strip()) < 120][:12]
examples = []
for i, sentence in enumerate(sentences):
    cut = len(sentence) // 2
    others = [sentences[(i + k) % len(sentences)] for k in (1, 2, 3)]
    choices = [sentence[cut:]] + [other[len(other) // 2 :] for other in others]
    order = np.random.default_rng(i).permutation(4)
    examples.append(
        {
            "context": sentence[:cut],
            "choices": [choices[j] for j in order],
            "label": int(np.argmin(order)),
        }
    )
directory = tempfile.mkdtemp()
path = os.path.join(directory, "continuations.jsonl")
with open(path, "w") as file:
    file.write("\n".join(json.dumps(example) for example in examples))

results = model.evaluate_multiple_choice(
    path, modes=("ar", "prefix", "md"), length_normalization="bytes", num_samples=2
)
for mode, result in results["modes"].items():
    print(f"{mode}: accuracy {result['accuracy']:.2f} on {results['num_examples']} examples")

"""
After a few seconds of training the model is close to chance (0.25) here; the point
is the procedure. Scores per choice, and standard errors for `"md"`, are in
`results["modes"][mode]["scores"]` and `["standard_errors"]`.
"""

"""
## The command line

The same functions are available on a saved model:

```
keras-dualobj generate model.keras --prompt "The import statement" --max-new-tokens 64
keras-dualobj generate model.keras --prompt "The import statement" --decoder md \\
    --max-new-tokens 32 --num-steps 16 --block-length 8
keras-dualobj generate model.keras --prompt "The class " --suffix " is a statement." \\
    --decoder md --max-new-tokens 12
keras-dualobj evaluate model.keras --text held_out.txt --modes ar md --num-samples 16
keras-dualobj evaluate model.keras --multiple-choice continuations.jsonl \\
    --modes ar prefix md --length-normalization bytes --output results.json
```

The saved file holds the tokenizer too, so the command line takes text; `--decoder`
picks the decoder, and its flags are the decoder's options. Its multiple
choice is the Python call's with the same `--length-normalization bytes` (the command's
default is `none`, the summed log-likelihood, which favours short choices): the AR and
prefix-LM scores are exact, so it prints the accuracies printed above (`md`, a
Monte-Carlo estimate, is left out to save time).
"""

model_path = os.path.join(directory, "model.keras")
model.save(model_path)
keras_dualobj_cli(["generate", model_path, "--prompt", "The import statement",
                   "--max-new-tokens", "32", "--decoder", "md", "--num-steps", "8"])
keras_dualobj_cli(["evaluate", model_path, "--multiple-choice", path, "--modes", "ar", "prefix",
                   "--length-normalization", "bytes"])
"""
## Where next

- `keras_dualobj.decoders` holds the decoders; `keras_dualobj.generation` and
  `keras_dualobj.evaluation` hold the functions they and these methods delegate to; they take the model's call functions, so they can be reused
  with other models that expose `logits` / `call_with_cache`.
- `benchmarks/generation_speed.py` measures cached vs uncached AR decoding and MD
  decoding speed on your machine.
"""
