"""`DualLM.fit()` training throughput vs the hand-written PyTorch pilot (DESIGN.md §4).

The pilot — a hand-written PyTorch loop, fp32, 2 threads — trained the character model
(vocabulary 69, 4 layers x 128, 4 heads, SwiGLU, RoPE, ~0.8M parameters) on rows of 128
tokens, batch 32, at ~23k tokens/s on these machines. This script measures our `fit()` on
exactly that configuration, on every Keras backend (one child process each, since the
backend is fixed at import), side by side in one run, for:

- the objective mix: α = 1 (pure AR) and α = 0.5 (dual, one forward pass with per-row masks);
- the optimiser: AdamW (the pilot's) and the recipe's Muon (`build_optimizer`);
- compilation: each backend's default, and for TensorFlow also `jit_compile=False`
  (XLA off); `--torch-compile` adds PyTorch with `jit_compile=True` (`torch.compile`,
  minutes of compilation on 2 cores).

Because the pilot's 23k tokens/s was measured on another day (these machines are
shared, so the load changes the figure several-fold), the run also times a
**pilot-style reference in the same run**: a hand-written PyTorch loop of the same model
(`nn.Linear`, RMSNorm, RoPE, SwiGLU, `F.scaled_dot_product_attention`, AdamW; α = 1 with a
causal mask, α = 0.5 with per-row causal/bidirectional masks), once before and once
after the backends, so that load drifting during the run shows. The ratio to that
reference (mean of the two) is the fair comparison; the ratio to 23k is printed too.

Threads are pinned to `--threads` (2, as the pilot) for every backend. Steps are timed
from the end of the first `fit()` call (compilation excluded) with a callback that waits
for each step's loss, so asynchronous dispatch cannot flatter a backend.

Usage (repository root; `PYTHONPATH=.` unless installed):

    python benchmarks/training_throughput.py                       # all backends
    python benchmarks/training_throughput.py --backends jax --steps 40
    python benchmarks/training_throughput.py --output benchmarks/results/x.json

Writes JSON (default `benchmarks/results/training_throughput.json`) and prints a table
with each figure's ratio to the pilot's 23k tokens/s and to the same-run reference. Numbers from a shared machine
vary from run to run: compare ratios measured in the same run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PILOT_TOKENS_PER_SECOND = 23_000
BACKENDS = ("tensorflow", "jax", "torch")
CONFIG = {
    "vocabulary_size": 69,
    "num_layers": 4,
    "num_heads": 4,
    "hidden_dim": 128,
    "intermediate_dim": 344,
    "sequence_length": 128,
    "batch_size": 32,
}


def _pin_threads(backend, threads):
    # Must run before the backend is imported.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    if backend == "jax":
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
        )


def _case_names(backend, torch_compile=False):
    cases = []
    for optimizer in ("adamw", "muon"):
        for ar_fraction in (1.0, 0.5):
            cases.append({"optimizer": optimizer, "ar_fraction": ar_fraction, "jit_compile": "auto"})
    if backend == "tensorflow":  # "auto" is XLA there; JAX always compiles
        cases.append({"optimizer": "adamw", "ar_fraction": 0.5, "jit_compile": False})
    if backend == "torch" and torch_compile:
        cases.append({"optimizer": "adamw", "ar_fraction": 0.5, "jit_compile": True})
    return cases


def run_reference(threads, steps, repeats):
    """The pilot-style hand-written PyTorch loop on the same configuration."""
    _pin_threads("torch", threads)
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocabulary, layers, width = CONFIG["vocabulary_size"], CONFIG["num_layers"], CONFIG["hidden_dim"]
    heads, hidden, length = CONFIG["num_heads"], CONFIG["intermediate_dim"], CONFIG["sequence_length"]
    batch_size, head_dim = CONFIG["batch_size"], width // CONFIG["num_heads"]

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(width))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-7) * self.scale

    def rope(x, cos, sin):
        even, odd = x[..., ::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = RMSNorm(), RMSNorm()
            self.qkv = nn.Linear(width, 3 * width, bias=False)
            self.out = nn.Linear(width, width, bias=False)
            self.gate = nn.Linear(width, hidden, bias=False)
            self.up = nn.Linear(width, hidden, bias=False)
            self.down = nn.Linear(hidden, width, bias=False)

        def forward(self, x, cos, sin, mask):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(rope(q, cos, sin), rope(k, cos, sin), v, attn_mask=mask)
            x = x + self.out(attended.transpose(1, 2).reshape(b, t, width))
            h = self.norm2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocabulary, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm, self.head = RMSNorm(), nn.Linear(width, vocabulary, bias=False)
            inverse = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
            angles = torch.arange(length)[:, None] * inverse[None]
            self.register_buffer("cos", angles.cos())
            self.register_buffer("sin", angles.sin())

        def forward(self, x, mask):
            h = self.embedding(x)
            for block in self.blocks:
                h = block(h, self.cos, self.sin, mask)
            return self.head(self.norm(h))

    tokens = torch.randint(5, vocabulary, (batch_size, length))
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
    per_row = torch.stack(
        [causal if row % 2 == 0 else torch.ones_like(causal) for row in range(batch_size)]
    )[:, None]
    records = []
    for ar_fraction, mask in ((1.0, causal), (0.5, per_row)):
        model = Model()
        optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
        rates = []
        for repeat in range(repeats + 1):
            started = time.perf_counter()
            for _ in range(steps):
                logits = model(tokens, mask)
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocabulary), tokens[:, 1:].reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if repeat:  # the first round warms up
                rates.append(steps * batch_size * length / (time.perf_counter() - started))
        record = {
            "backend": "pilot-style torch loop",
            "optimizer": "adamw",
            "ar_fraction": ar_fraction,
            "jit_compile": "eager",
            "tokens_per_second": max(rates),
            "tokens_per_second_runs": rates,
            "ratio_to_pilot": max(rates) / PILOT_TOKENS_PER_SECOND,
            "compile_seconds": 0.0,
        }
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def run_child(backend, threads, steps, repeats, torch_compile=False):
    """Measures every case on the current backend; returns a list of records."""
    _pin_threads(backend, threads)
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_dualobj.models import DualBackbone
    from keras_dualobj.models import DualLM
    from keras_dualobj.training import build_optimizer

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)

    class StepTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # wait for the step
            self.ends.append(time.perf_counter())

    length, batch_size = CONFIG["sequence_length"], CONFIG["batch_size"]
    rng = np.random.default_rng(0)
    rows = rng.integers(5, CONFIG["vocabulary_size"], (batch_size * 8, length)).astype("int32")
    # Packed-row style input: a document boundary every ~40 tokens.
    documents = np.cumsum(rng.random(rows.shape) < 1 / 40, axis=1).astype("int32")
    dataset = (
        tf.data.Dataset.from_tensor_slices({"token_ids": rows, "document_ids": documents})
        .batch(batch_size)
        .repeat()
        .prefetch(4)
    )
    records = []
    for case in _case_names(backend, torch_compile):
        keras.utils.set_random_seed(0)
        backbone = DualBackbone(
            vocabulary_size=CONFIG["vocabulary_size"],
            num_layers=CONFIG["num_layers"],
            num_heads=CONFIG["num_heads"],
            hidden_dim=CONFIG["hidden_dim"],
            intermediate_dim=CONFIG["intermediate_dim"],
            max_sequence_length=length,
        )
        model = DualLM(backbone, ar_fraction=case["ar_fraction"], seed=0)
        model.compile(
            optimizer=build_optimizer(model, optimizer=case["optimizer"], learning_rate=3e-3),
            jit_compile=case["jit_compile"],
        )
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        compile_seconds = time.perf_counter() - started
        rates = []
        for _ in range(repeats):
            timer = StepTimes()
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
            seconds = timer.ends[-1] - timer.ends[1]  # from the end of the first step
            rates.append((steps - 1) * batch_size * length / seconds)
        record = dict(
            case,
            backend=backend,
            jit_compile=str(case["jit_compile"]),
            tokens_per_second=max(rates),
            tokens_per_second_runs=rates,
            ratio_to_pilot=max(rates) / PILOT_TOKENS_PER_SECOND,
            compile_seconds=compile_seconds,
            parameters=int(model.count_params()),
        )
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "training_throughput.json",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the pilot-style PyTorch loop"
    )
    parser.add_argument(
        "--torch-compile", action="store_true", help="also time PyTorch with torch.compile"
    )
    parser.add_argument("--child", choices=BACKENDS + ("reference",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2 or args.repeats < 1 or args.threads < 1:
        parser.error(
            f"need --steps >= 2, --repeats >= 1, --threads >= 1; received "
            f"{args.steps}, {args.repeats}, {args.threads}"
        )
    if args.child == "reference":
        run_reference(args.threads, args.steps, args.repeats)
        return 0
    if args.child:
        run_child(args.child, args.threads, args.steps, args.repeats, args.torch_compile)
        return 0

    records = []
    reference = [] if args.no_reference else ["reference"]
    children = reference + list(args.backends) + reference
    for backend in children:
        command = [
            sys.executable, __file__, "--child", backend, "--threads", str(args.threads),
            "--steps", str(args.steps), "--repeats", str(args.repeats),
        ] + (["--torch-compile"] if args.torch_compile else [])
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
        completed = subprocess.run(command, capture_output=True, text=True, env=environment)
        if completed.returncode:
            sys.stderr.write(completed.stderr[-4000:])
            raise SystemExit(f"{backend} child failed with exit code {completed.returncode}")
        records += [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]

    print(f"\nfit() tokens/s, {CONFIG}, {args.threads} threads; pilot: "
          f"{PILOT_TOKENS_PER_SECOND:,} tokens/s (hand-written PyTorch loop)")
    reference = {}
    for r in records:
        if r["backend"] == "pilot-style torch loop":
            reference.setdefault(r["ar_fraction"], []).append(r["tokens_per_second"])
    reference = {alpha: sum(rates) / len(rates) for alpha, rates in reference.items()}
    for r in records:
        same_alpha = reference.get(r["ar_fraction"])
        r["ratio_to_reference_same_run"] = None if same_alpha is None else r["tokens_per_second"] / same_alpha
    print(f"{'backend':<23} {'optimizer':<9} {'alpha':>5} {'jit_compile':>11} "
          f"{'tokens/s':>10} {'x 23k':>6} {'x ref':>6} {'compile s':>9}")
    for r in records:
        ratio = r["ratio_to_reference_same_run"]
        print(f"{r['backend']:<23} {r['optimizer']:<9} {r['ar_fraction']:>5} "
              f"{r['jit_compile']:>11} {r['tokens_per_second']:>10,.0f} "
              f"{r['ratio_to_pilot']:>6.2f} {'-' if ratio is None else f'{ratio:.2f}':>6} "
              f"{r['compile_seconds']:>9.1f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "config": CONFIG,
        "threads": args.threads,
        "steps": args.steps,
        "repeats": args.repeats,
        "pilot_tokens_per_second": PILOT_TOKENS_PER_SECOND,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "results": records,
    }, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
