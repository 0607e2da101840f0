"""
Title: Dual-objective language models in Keras: AR + masked diffusion in one model
Author: keras-dualobj developers
Date created: 2026/11/27
Last modified: 2026/11/27
Description: Train one Transformer on autoregressive and masked-diffusion objectives with `fit()`.
Accelerator: None
"""

"""
## Introduction

Autoregressive (AR) language models learn fast, but once the training data is repeated
many times they overfit. Masked-diffusion (MD) models — which learn to fill in masked
tokens with bidirectional attention — resist overfitting but learn slowly. Samuel &
Charpentier ([arXiv 2512.14549](https://arxiv.org/abs/2512.14549)) train **one**
Transformer on both objectives, with no architectural change, and find that the mix beats
either objective alone at every level of data repetition.

`keras_dualobj.DualLM` does this inside a plain `model.fit()`: in every batch a fraction
α (`ar_fraction`) of the rows are AR rows (causal attention, clean input, predict the next
token) and the rest are MD rows (bidirectional attention, a random fraction t of the tokens
replaced by `<mask>`, predict the masked tokens, weighted by 1/t). All rows go through one
forward pass; a per-row attention mask selects causal or bidirectional attention.

This guide runs on any backend: set `KERAS_BACKEND` to `tensorflow`, `jax` or `torch`
before importing Keras.
"""

"""
## Setup
"""

import os

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import numpy as np
from keras import ops

from keras_dualobj import DualBackbone, DualLM
from keras_dualobj.data import prepare_data

keras.utils.set_random_seed(0)

"""
## Data: a corpus, a tokenizer, packed rows, a repetition budget

`prepare_data` loads a corpus, splits off a held-out tail, tokenizes, packs documents
into fixed-length rows (every document starts with `<s>` and carries a document id, so
attention never crosses documents) and plans the repetition: here the first 40,000 unique
tokens are seen 2 times, reshuffled each epoch; it prints what it did. The built-in source is CPython's own
documentation text, so this runs offline; `"auto"` would pick tiny Shakespeare where it
can. The byte-level tokenizer needs no training (id = 16 + byte; ids 0–15 are reserved
for special tokens).
"""

data = prepare_data(
    "builtin",
    tokenizer="byte",
    sequence_length=64,
    batch_size=16,
    unique_tokens=40_000,
    repetitions=2,
    validation_fraction=0.02,
    seed=0,
)

"""
A batch is a dict of `token_ids` and `document_ids`; there are no labels, because the
model builds its own targets for both objectives.
"""

batch = next(iter(data.train_dataset))
print({name: tuple(value.shape) for name, value in batch.items()})

"""
## The model

`DualBackbone` is a decoder-style Transformer (RMSNorm, rotary embeddings, SwiGLU, no
biases, untied output head). `DualLM` wraps it with the dual objective. With
`ar_fraction=0.5`, half of the rows of each batch train each objective.
"""

backbone = DualBackbone(
    vocabulary_size=data.tokenizer.vocabulary_size(),
    num_layers=2,
    num_heads=4,
    hidden_dim=64,
    intermediate_dim=172,
    max_sequence_length=64,
)
model = DualLM(backbone, tokenizer=data.tokenizer, ar_fraction=0.5, seed=0)
model.compile(optimizer=keras.optimizers.AdamW(3e-3))

"""
One training forward pass shows the row split and the masking: AR rows keep clean
input, MD rows have some tokens replaced by `<mask>` (id 4).
"""

forward = model(batch, training=True)
ar_rows = ops.convert_to_numpy(forward["ar_rows"])
masked = ops.convert_to_numpy(forward["masked_positions"])
print("AR rows:", ar_rows.astype(int))
print("masked tokens per MD row:", masked.sum(axis=1)[~ar_rows])

"""
## Training

`fit()` logs the dual loss and each objective separately. Validation reports **both**
held-out losses whatever α is: the exact AR loss and a Monte-Carlo estimate of the MD
bound (ELBO) with a fixed seed, so successive evaluations are comparable.
"""

history = model.fit(**data.fit_arguments(), verbose=2)

"""
## Evaluation

`evaluate()` reports the held-out AR loss (nats per token, exact) and the MD ELBO (an
upper bound on the negative log-likelihood per token, estimated with `elbo_samples` masks
per row).
"""

print(model.evaluate(data.validation_dataset, return_dict=True, verbose=0))

"""
## One model, three attention modes

Calling the model returns causal (`mode="ar"`) logits. The same weights give bidirectional (`mode="md"`) logits
(what MD decoding uses), or prefix-LM logits: bidirectional over a prompt and causal
after it.
"""

token_ids = ops.convert_to_numpy(batch["token_ids"])[:2]
causal = model(token_ids)
bidirectional = model(token_ids, mode="md")
prefix = model({"token_ids": token_ids, "prefix_lengths": np.array([16, 16])}, mode="prefix")
print(tuple(causal.shape), tuple(bidirectional.shape), tuple(prefix.shape))

"""
## Choosing α

α = 1 is pure AR and α = 0 pure MD. The paper's rule of thumb: α ≈ 63/64 while the data
is repeated at most 16 times, and α ≈ 16 / R beyond (so the AR objective sees about 16
repetitions). `keras_dualobj.study.recommend.paper_ar_fraction` returns it:
"""

from keras_dualobj.study.recommend import paper_ar_fraction

for repetitions in (1, 16, 32, 128):
    print(f"R = {repetitions:>3}: α = {paper_ar_fraction(repetitions):.4f}")

"""
## Saving

The model saves to a single `.keras` file with its tokenizer and reloads on any backend.
"""

import tempfile

path = os.path.join(tempfile.mkdtemp(), "dual_lm.keras")
model.save(path)
restored = keras.saving.load_model(path)
np.testing.assert_allclose(
    ops.convert_to_numpy(restored(token_ids)), ops.convert_to_numpy(causal), atol=1e-5
)
print("restored", type(restored).__name__, "with", type(restored.tokenizer).__name__)
