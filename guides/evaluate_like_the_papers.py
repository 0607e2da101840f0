"""
Title: Evaluate like the papers
Author: keras-dualobj contributors
Date created: 2026/12/03
Last modified: 2026/12/03
Description: One stated MD-likelihood estimator, the pseudo-log-likelihood, and lm-evaluation-harness runs of both faces of a dual model.
Accelerator: None
"""

"""
## Introduction

Language models are compared with EleutherAI's lm-evaluation-harness (`lm-eval`), and
the dual-objective paper (Samuel & Charpentier, arXiv 2512.14549) scores zero-shot
tasks with both faces of one model. Results are only comparable when the estimator is
stated and reproducible. This guide shows:

1. the **one** masked-diffusion (MD) bound estimator that `evaluate()`, `score()`,
   multiple choice and the harness share, and why its numbers do not depend on the
   batch, the padding or the backend;
2. the exact **pseudo-log-likelihood** (one token masked at a time), a deterministic
   MD score for short answers;
3. an lm-evaluation-harness run of a task defined in a local file, in four modes
   (`ar`, `prefix`, `md`, `pll`), and a rolling-window perplexity, both offline;
4. the same from the command line, and which of the paper's tasks need the network.

It trains a tiny byte-level model for a few seconds (it needs `pip install
keras-dualobj[eval]` for the harness): the numbers are near chance; the procedures are
the point.
"""

"""
## Setup
"""

import json
import os
import tempfile
from pathlib import Path

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.
os.environ["HF_DATASETS_OFFLINE"] = "1"  # the harness reads only local files here

import keras
import numpy as np

from keras_dualobj import DualBackbone
from keras_dualobj import DualLM
from keras_dualobj.cli import main as keras_dualobj_cli
from keras_dualobj.data import prepare_data
from keras_dualobj.lm_eval.harness import run_harness

keras.utils.set_random_seed(0)

data = prepare_data(
    "builtin",
    tokenizer="byte",
    sequence_length=64,
    batch_size=32,
    unique_tokens=1024 * 64,
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
    max_sequence_length=64,
)
model = DualLM(backbone, ar_fraction=0.5, seed=0, tokenizer=tokenizer, elbo_samples=4)
model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=0.01))
model.fit(data.train_dataset, shuffle=False, verbose=0)

"""
## One estimator of the MD bound

For the `n` scored tokens of a row the MD face bounds `-log p`:
`B = E_k E_M [(n/k) Σ_{j in M} -log q(x_j | x with M masked)]`, with `k` uniform on
`1..n` and `M` a uniform set of `k` scored positions. The estimator draws `S`
**stratified** mask counts (`k = ⌈n (s + v) / S⌉` for `s = 0..S-1`, one offset `v` per
row), evaluates the `S` masked copies as **one tiled batch**, and reports the mean and
its standard error. Its random numbers are an integer hash of the seed, the row's
tokens, the sample and the position: a row gets the same masks in any batch, behind
any padding, on any backend.
"""

text = "The with statement is used to wrap the execution of a block."
ids = np.concatenate([[model.bos_token_id], tokenizer.tokenize(text)]).reshape(1, -1)
for num_samples in (4, 16, 64):
    result = model.score(ids, "md", num_samples=num_samples, seed=0)
    print(
        f"S={num_samples:2d}: bound {result['nll'][0]:.2f} ± "
        f"{result['standard_error'][0]:.2f} nats over {result['num_tokens'][0]} tokens"
    )
print(f"exact AR -log p: {model.score(ids)['nll'][0]:.2f} nats")

"""
Batch one row or eight: the same numbers (here the row shares a batch with seven
others of different lengths, right-padded).
"""

others = [tokenizer.tokenize(s) for s in ["def f(x):", "import os", "x = [1, 2, 3]"] * 3]
rows = np.full((8, ids.shape[1]), model.pad_token_id, "int32")
document_ids = np.ones_like(rows)
for row, other in enumerate([ids[0, 1:]] + others[:7]):
    row_ids = np.concatenate([[model.bos_token_id], other])
    rows[row, : len(row_ids)] = row_ids
    document_ids[row, : len(row_ids)] = 0
alone = model.score(ids, "md", num_samples=16, seed=0)["nll"][0]
together = model.score(rows, "md", document_ids=document_ids, num_samples=16, seed=0)["nll"][0]
print(f"batch of 1: {alone:.5f}   batch of 8: {together:.5f}")

"""
`evaluate()` reports the same estimator as `md_loss`, in nats per scored token, with
`elbo_samples` masks per row and `elbo_seed` (here 4 and 0): it equals the sum of the
per-row bounds from `score()` over the sum of their tokens, whatever the batch size.
"""

logs = model.evaluate(
    {"token_ids": rows, "document_ids": document_ids}, batch_size=4, verbose=0, return_dict=True
)
scored = model.score(rows, "md", document_ids=document_ids, num_samples=4, seed=0)
print(f"evaluate(): {logs['md_loss']:.5f}   score(): "
      f"{scored['nll'].sum() / scored['num_tokens'].sum():.5f} nats/token")

"""
## The pseudo-log-likelihood

`score(mode="pll")` masks one scored token at a time (all `n` copies batched) and sums
`-log q(x_j | everything else)`. It is exact, so it needs no seed, but it is a score,
not a bound: each token sees all the others, so it is usually well below the bound.
"""

print(f"-PLL: {model.score(ids, 'pll')['nll'][0]:.2f} nats")

"""
## An lm-evaluation-harness task over a local file

The harness reads datasets through `datasets`, which reads local JSON Lines files. We
write a small multiple-choice file from Python's documentation (the true continuation
of a sentence against continuations taken from other topics) and a task YAML that
points at it. `run_harness` runs `lm_eval.simple_evaluate` once per mode with the
registered `keras-dualobj` model.
"""

from pydoc_data.topics import topics  # noqa: E402

snippets = [" ".join(topics[name].split())[:60] for name in sorted(topics)[:24]]
examples = []
for index, snippet in enumerate(snippets[:12]):
    context, answer = snippet[:30], snippet[30:]
    wrong = [snippets[12 + (index + k) % 12][30:] for k in range(2)]
    choices = [answer] + wrong
    order = np.random.default_rng(index).permutation(3)
    examples.append(
        {"context": context, "choices": [choices[i] for i in order],
         "label": int(np.flatnonzero(order == 0)[0])}
    )
task_dir = Path(tempfile.mkdtemp())
(task_dir / "docs_mc.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
(task_dir / "docs_mc.yaml").write_text(
    f"""task: python_docs_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {task_dir / "docs_mc.jsonl"}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
target_delimiter: ""
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
)
results = run_harness(
    model, ["python_docs_mc"], ("ar", "prefix", "md", "pll"), include_path=task_dir,
    num_samples=8, seed=0,
)
for mode, result in results.items():
    metrics = result["results"]["python_docs_mc"]
    print(f"{mode:6s} acc {metrics['acc,none']:.3f}  acc_norm {metrics['acc_norm,none']:.3f}")

"""
A perplexity task (`output_type: loglikelihood_rolling`) cuts each document into the
harness's rolling windows of the model's context (64 tokens here): every token is
scored once, later windows with a full context. Mode `ar` is exact; `md` sums the MD
bound over the windows — the rolling MD perplexity no other diffusion adapter gives.
"""

(task_dir / "docs.jsonl").write_text(
    "".join(json.dumps({"text": " ".join(topics[n].split())[:300]}) + "\n"
            for n in sorted(topics)[24:28])
)
(task_dir / "docs_ppl.yaml").write_text(
    f"""task: python_docs_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {task_dir / "docs.jsonl"}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: byte_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
"""
)
results = run_harness(model, ["python_docs_ppl"], ("ar", "md"), include_path=task_dir,
                      num_samples=4)
for mode, result in results.items():
    metrics = result["results"]["python_docs_ppl"]
    print(f"{mode}: bits per byte {metrics['bits_per_byte,none']:.3f}")

"""
## From the command line

`keras-dualobj evaluate model.keras --tasks ...` runs the same, once per `--modes`
entry (`--num-samples` and `--seed` for `md`, `--limit` examples per task).
"""

model_path = task_dir / "model.keras"
model.save(model_path)
keras_dualobj_cli(
    ["evaluate", str(model_path), "--tasks", "python_docs_mc", "--include-path",
     str(task_dir), "--modes", "pll", "--limit", "6"]
)

"""
## The paper's tasks need the network once

The paper's zero-shot benchmarks are the harness's standard tasks (`hellaswag`,
`arc_easy`, `piqa`, ...), and every one of them is a Hugging Face Hub dataset: the
first run downloads it (and the harness's own task list resolves names offline, but
not the data). Afterwards the cached copy (`~/.cache/huggingface`) works with
`HF_DATASETS_OFFLINE=1`. Only tasks over local files, like the two above, never need
the network:

```bash
keras-dualobj evaluate model.keras --tasks arc_easy,hellaswag --modes ar prefix md pll \\
    --num-samples 32 --seed 0 --output results.json
```

The same from Python, with the model registered under `keras-dualobj`:

```python
import lm_eval
import keras_dualobj.lm_eval.model  # registers "keras-dualobj"

lm_eval.simple_evaluate(model="keras-dualobj",
                        model_args="path=model.keras,mode=md,mc_samples=32,seed=0",
                        tasks=["arc_easy"])
```
"""
