"""
Title: Add a diffusion face to an autoregressive model
Author: keras-dualobj developers
Date created: 2026/12/08
Last modified: 2026/12/08
Description: Convert a keras-hub Llama 3 model into a DualLM, teach it masked diffusion with the dual objective while measuring what its autoregressive face pays, and hand it back to keras-hub and Hugging Face.
Accelerator: None
"""

"""
## Introduction

Most people who want a model with both faces already have an autoregressive one. The
strongest diffusion language models of the last two years were adapted from
autoregressive checkpoints (Dream-7B from Qwen2.5, DiffuLLaMA from LLaMA 2). The dual
objective (Samuel & Charpentier, arXiv 2512.14549) is a natural way to do that without
losing the autoregressive (AR) face: a share α of every batch keeps training the causal
objective while the rest learns masked diffusion (MD) with bidirectional attention, in
the same weights.

`keras_dualobj.convert.from_keras_hub` takes a keras-hub Llama 3 (or Qwen 2) model — a
backbone, a `CausalLM`, or a preset — and returns a `DualLM` whose causal face computes
the keras-hub model's logits, carrying its tokenizer. With a downloaded preset it is
one line:

```python
model = from_keras_hub("llama3.2_1b")          # a Kaggle handle, "hf://..." or a folder
```

This guide runs offline on a CPU in well under a minute, so it starts from a tiny
random Llama 3 of keras-hub instead (grouped-query attention, Llama 3.1's RoPE scaling,
keras-hub's own `Llama3Tokenizer` over bytes), gives it a short AR pre-training of its
own so that it has an AR face worth keeping, and then does what you would do with a
real checkpoint.
"""

"""
## Setup
"""

import tempfile
from pathlib import Path

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import keras_hub
import numpy as np
from pydoc_data import topics

from keras_dualobj.convert import causal_logits_error, from_keras_hub, to_keras_hub
from keras_dualobj.convert.keras_hub_tiny import tiny_keras_hub_model
from keras_dualobj.decoders import ARDecoder, MDDecoder

keras.utils.set_random_seed(0)

"""
## The autoregressive model you start from

A keras-hub `Llama3CausalLM`: 2 layers of width 64, 4 query heads sharing 2 key/value
heads, trained for 100 steps on its own AR objective (keras-hub's `fit`) over
CPython's built-in documentation text. Rows are 64 tokens: `<|begin_of_text|>` and
63 tokens of text.
"""

hub_task = tiny_keras_hub_model("llama3", num_layers=2, hidden_dim=64, intermediate_dim=128)
tokenizer = hub_task.preprocessor.tokenizer
text = " ".join(topics.topics[name] for name in sorted(topics.topics))[:120_000]
token_stream = keras.ops.convert_to_numpy(tokenizer(text)).astype("int32")
body = token_stream[: len(token_stream) // 63 * 63].reshape(-1, 63)
rows = np.concatenate([np.full((len(body), 1), tokenizer.start_token_id, "int32"), body], 1)
train_rows, held_out_rows = rows[:-64], rows[-64:]
print(f"{len(train_rows)} training rows, {len(held_out_rows)} held out, "
      f"vocabulary {tokenizer.vocabulary_size()}")

hub_task.preprocessor = None  # token ids in: x, y (next token), sample weights
hub_task.compile(optimizer=keras.optimizers.AdamW(3e-3))
features = {"token_ids": train_rows[:, :-1], "padding_mask": np.ones_like(train_rows[:, :-1])}
hub_task.fit(features, train_rows[:, 1:], batch_size=16, epochs=1, verbose=0)

"""
## Convert

`from_keras_hub` maps every weight one to one (the blocks are the same: pre-norm RMSNorm,
rotary positions, SwiGLU, grouped-query attention) and carries the tokenizer into the
`DualLM`'s preprocessor. The mask token MD needs is one Llama 3 reserves and never uses
in text, `<|reserved_special_token_0|>`. The causal logits agree to float32 round-off.
"""

hub_task.preprocessor = None
model = from_keras_hub(hub_task, tokenizer=tokenizer, sequence_length=64, ar_fraction=0.5,
                       seed=0)
print("relative logit difference:", f"{causal_logits_error(model, hub_task, rows[:4]):.1e}")
print("mask token:", tokenizer.id_to_token(model.mask_token_id))


"""
## The held-out losses before

`evaluate()` reports both faces whatever α: the exact AR loss and the MD ELBO, in nats
per token. The AR face is what pre-training made it; the MD face has never seen a
`<mask>` nor bidirectional attention.
"""

model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
before = model.evaluate(held_out_rows, batch_size=32, return_dict=True, verbose=0)
print(f"before: AR loss {before['ar_loss']:.3f}, MD ELBO {before['md_loss']:.3f}")

"""
## Teach it the MD face with the dual objective

α = 1/2: half of the rows of every step are AR rows (causal, clean input), half MD
rows (bidirectional, a random share of the tokens masked). Two epochs: 200 steps of
16 rows.
`benchmarks/from_keras_hub_adaptation.py` measures α = 1, 63/64 and 1/2 side by side.
"""

history = model.fit(train_rows, batch_size=16, epochs=2, verbose=0)
after = model.evaluate(held_out_rows, batch_size=32, return_dict=True, verbose=0)
print(f"after:  AR loss {after['ar_loss']:.3f}, MD ELBO {after['md_loss']:.3f}")
print(f"AR face changed by {after['ar_loss'] - before['ar_loss']:+.3f} nats/token; "
      f"MD face by {after['md_loss'] - before['md_loss']:+.3f}")

"""
Both faces improved, and the AR face did not collapse: the AR rows never stop training
it. (This stand-in was pre-trained for only 100 steps, so its AR face still had much
to learn; with a converged checkpoint the question is how little the AR loss rises,
which `benchmarks/from_keras_hub_adaptation.py` measures at α = 1, 63/64 and 1/2.)

## Both faces generate

The AR face decodes left to right with a KV cache; the MD face fills in masked
positions over a number of denoising steps, here one token per step.
"""

prompt = "The for statement"
print("AR:", repr(model.generate(prompt, max_new_tokens=24, decoder=ARDecoder(seed=0))))
print("MD:", repr(model.generate(prompt, max_new_tokens=24, decoder=MDDecoder(num_steps=24, seed=0))))

"""
## Hand it back

`to_keras_hub` builds keras-hub's `Llama3CausalLM` with the trained weights and the
tokenizer; keras-hub writes it as a preset, or in the Hugging Face Transformers layout
(`export_to_transformers`), so the AR face runs in any Transformers-compatible server.
"""

exported = to_keras_hub(model)
exported.compile(sampler=keras_hub.samplers.TopKSampler(k=5, seed=0))
print(type(exported).__name__, repr(exported.generate(prompt, max_length=32)))
print("relative logit difference:", f"{causal_logits_error(model, exported, rows[:4]):.1e}")
folder = Path(tempfile.mkdtemp())
exported.save_to_preset(str(folder / "keras_hub_preset"))
exported.export_to_transformers(str(folder / "transformers"))
print(sorted(path.name for path in (folder / "transformers").iterdir()))

"""
## From the command line

The same steps with a preset (or a local preset folder):

```bash
keras-dualobj convert --from-keras-hub llama3.2_1b --output llama_dual.keras
keras-dualobj train --init llama_dual.keras --preset small --ar-fraction 63/64 \\
    --source text --path corpus.txt --output-dir runs/llama_dual
keras-dualobj convert runs/llama_dual/model.keras --to-keras-hub hub_preset \\
    --to-transformers hf_folder
```

`train --init` keeps the model's architecture and tokenizer and takes the training
recipe (Muon + AdamW, warmup-stable-decay) from the preset; `docs/bring_your_own_model.md`
lists what converts and what does not.
"""
