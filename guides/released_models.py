"""
Title: Use the paper's released models
Author: keras-dualobj developers
Date created: 2026/12/03
Last modified: 2026/12/07
Description: Load a reference checkpoint (weights, config, tokenizer.json) into a Keras DualLM, generate both ways, compare AR and prefix-LM scores, and export back.
Accelerator: None
"""

"""
## Introduction

Samuel & Charpentier released every model of the paper — a 470M-parameter Transformer
trained at each α × R of their grid — together with their PyTorch training code. A
released model is a folder: the reference's JSON config (`config.json`), the weights
(`state_dict.bin`, a `torch.save`d state dict, or `model.safetensors`) and a byte-level
BPE `tokenizer.json`. `keras_dualobj.convert` reads such a folder into a `DualLM` whose
causal and bidirectional outputs equal the reference model's (tested against an
independent NumPy re-implementation of the reference forward pass), on TensorFlow, JAX
and PyTorch.

With internet, one line loads a released model from the Hugging Face hub:

```python
model = load_reference_model("hf://ltg/<model>@<revision>", ar_fraction=0.75)
```

This guide runs offline on a 2-core CPU, so it makes a stand-in first: a tiny model of
the reference architecture, trained for a few steps and written in the reference's own
layout with `to_reference`. Everything after that is what you would do with a released
model.
"""

"""
## Setup
"""

import json
import tempfile
from pathlib import Path

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import numpy as np
from keras import ops
from pydoc_data import topics
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from keras_dualobj import DualBackbone, DualLM
from keras_dualobj.convert import (
    load_reference_model,
    load_reference_tokenizer,
    reference_config,
    save_state_dict,
    to_reference,
)
from keras_dualobj.data import prepare_data
from keras_dualobj.decoders import ARDecoder, MDDecoder

keras.utils.set_random_seed(0)
folder = Path(tempfile.mkdtemp()) / "released-model"
folder.mkdir()

"""
## A stand-in for a released model

The reference tokenizer is a byte-level BPE whose first 16 ids are special tokens
(`<unk>`=0, `<s>`=1, `</s>`=2, `<pad>`=3, `<mask>`=4, then reserved ones). We train a
small one with the `tokenizers` library on CPython's documentation text and save it as
`tokenizer.json`, the file a released model ships.
"""

texts = [topics.topics[key] for key in sorted(topics.topics)]
specials = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"] + [f"<special_{i}>" for i in range(11)]
hf_tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
hf_tokenizer.decoder = decoders.ByteLevel()
hf_tokenizer.train_from_iterator(
    texts,
    trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ),
)
hf_tokenizer.save(str(folder / "tokenizer.json"))

"""
`load_reference_tokenizer` runs that file's pipeline in a Keras tokenizer layer, with the
same ids as the `tokenizers` library:
"""

tokenizer = load_reference_tokenizer(folder / "tokenizer.json")
sample = "The import statement binds names."
print(tokenizer.tokenize(sample)[:8])
print(hf_tokenizer.encode(sample, add_special_tokens=False).ids[:8])

"""
The reference network is our `DualBackbone` with the reference head switched on: the
final RMSNorm, a `hidden x hidden` projection, GELU, then a vocabulary projection with a
bias (`head_projection=True, head_bias=True`); `initialization="reference"` uses the
reference's initialisation. The `paper-470m` preset is exactly this at full size
(468,700,160 parameters). Here: 2 layers of width 64, trained for 40 steps.
"""

backbone = DualBackbone(
    vocabulary_size=tokenizer.vocabulary_size(),
    num_layers=2,
    num_heads=4,
    hidden_dim=64,
    intermediate_dim=172,
    max_sequence_length=64,
    head_projection=True,
    head_bias=True,
    initialization="reference",
)
trained = DualLM(backbone, tokenizer=tokenizer, ar_fraction=0.5, seed=0)
trained.compile(optimizer=keras.optimizers.AdamW(3e-3))
data = prepare_data(
    "builtin", tokenizer=tokenizer, sequence_length=64, batch_size=16,
    token_budget=40 * 16 * 64, seed=0, verbose=False,
)
trained.fit(**data.fit_arguments(), verbose=0)

"""
`to_reference` gives the reference's state dict (its parameter names, its shapes) and
`reference_config` its JSON config: the folder now looks like a released model.
"""

save_state_dict(to_reference(trained.backbone), folder / "model.safetensors")
(folder / "config.json").write_text(json.dumps(reference_config(trained.backbone), indent=1))
print(sorted(path.name for path in folder.iterdir()))
print(json.loads((folder / "config.json").read_text())["hidden_size"])

"""
## Load it

`load_reference_model` reads the folder (a checkpoint file with `config=` and
`tokenizer=`, or an `hf://` path, work too). `ar_fraction` is the α for any further
training; the weights do not depend on it.
"""

model = load_reference_model(folder, ar_fraction=0.75, seed=0)
token_ids = ops.convert_to_numpy(next(iter(data.validation_dataset))["token_ids"])[:4]
difference = np.max(np.abs(ops.convert_to_numpy(model(token_ids) - trained(token_ids))))
print(f"largest logit difference after the round trip: {difference:.2e}")

"""
## Generate both ways

The same weights decode autoregressively (causal attention, KV cache) and by masked
diffusion (bidirectional attention over the masks still ahead), each with its
decoder's defaults: top-k sampling for AR (`ARDecoder`), one token per pass sampled at a
low temperature for MD (`MDDecoder`).
"""

prompt = "The import statement"
print("AR:", repr(model.generate(prompt, max_new_tokens=16, decoder=ARDecoder(seed=0))))
print("MD:", repr(model.generate(prompt, max_new_tokens=16,
                                 decoder=MDDecoder(num_steps=16, seed=0))))

"""
## Score: AR and prefix-LM

The paper reports that scoring with a *prefix-LM* mask — bidirectional attention over the
prompt, causal over the continuation — beats plain AR scoring by over a point on its
benchmarks, with no extra training. `score` gives both: here, the negative
log-likelihood of the second half of each held-out row given the first half.
"""

half = token_ids.shape[1] // 2
second_half = np.zeros_like(token_ids, dtype=bool)
second_half[:, half:] = True
ar_scores = model.score(token_ids, "ar", target_mask=second_half)
prefix_scores = model.score(
    token_ids, "prefix", prefix_lengths=np.full((len(token_ids),), half)
)
print("AR      nats/token:", np.round(ar_scores["nll"] / ar_scores["num_tokens"], 3))
print("prefix  nats/token:", np.round(prefix_scores["nll"] / prefix_scores["num_tokens"], 3))

"""
This tiny stand-in was trained for seconds, mostly on AR and MD rows, never with a
prefix mask, so its two scores say nothing about the paper's result; a released model's
would.

## Save as Keras, or convert from the command line

The loaded model is an ordinary `DualLM`: save it, fine-tune it with `fit()`, evaluate
it. The command line does the conversion in one step:

```bash
keras-dualobj convert path/to/released-model --output model.keras
keras-dualobj convert path/to/state_dict.bin --config config.json --tokenizer tokenizer.json --output model.keras
```

`to_reference(model.backbone)` goes the other way, so a model trained here can be used
by the reference code. The reference computes in bfloat16; the conversion keeps the
weights' values, not that rounding.
"""

model.save(folder / "model.keras")
reloaded = keras.saving.load_model(folder / "model.keras")
print(np.allclose(ops.convert_to_numpy(reloaded(token_ids)), ops.convert_to_numpy(model(token_ids)), atol=1e-5))
