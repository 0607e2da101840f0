"""How the cost of a training step grows, and where it goes (issue 12, goal 5).

Forward + backward times of the library's own layers on one backend (default PyTorch:
eager, so dozens of shapes need no compilation), at a fixed number of tokens per step
(default 4,096 = 32 rows x 128, the pilot's):

1. **sequence length** 64 → 2,048 (rows = tokens / length), width 128, 4 heads;
2. **width** 64 → 512 at rows of 128 (heads of 32);
3. for each shape, the three parts of the model timed on their own, forward +
   backward: attention sublayer (RMSNorm, q/k/v projections, RoPE, attention,
   output projection) and feed-forward sublayer (RMSNorm, SwiGLU), each times the
   number of layers, and the output layer (final RMSNorm, untied head, cross-entropy
   over the vocabulary); their shares of the sum;
4. the attention sublayer under three masks: the library's per-row mask
   (`dual_attention_mask`: `[batch, length, length]` from document ids and prefix
   lengths, computed in the step as the model does), a plain causal `[length, length]`
   mask shared by all rows, and no mask array at all (`is_causal`-style, the backend's
   fused causal kernel where it has one: `ops.dot_product_attention(is_causal=True)`).

Variants of one shape are timed interleaved (A, B, C, A, B, C, ...; medians).

Usage (repository root):

    python benchmarks/scaling.py                  # torch, 1 thread
    python benchmarks/scaling.py --backend torch --repeats 3 --lengths 64 256 1024

Writes `benchmarks/results/scaling.json`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NUM_LAYERS = 4
VOCABULARY_SIZE = 272
HEAD_DIM = 32


def _torch_forward_backward(function, inputs):
    """Seconds of one forward + backward of `sum(function(*inputs))`."""
    import torch

    started = time.perf_counter()
    for value in inputs:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value.grad = None
    output = function(*inputs)
    output.float().sum().backward()
    return time.perf_counter() - started


def _parts(width, rows, length, threads):
    """name -> (function, inputs) for one shape, on the torch backend."""
    import keras
    import numpy as np
    import torch
    from keras import ops

    from keras_dualobj.layers.attention_mask import dual_attention_mask
    from keras_dualobj.layers.dual_attention import DualAttention
    from keras_dualobj.layers.rotary_embedding import apply_rotary
    from keras_dualobj.layers.swiglu import SwiGLUFeedForward
    from keras_dualobj.objectives import token_cross_entropy

    heads = width // HEAD_DIM
    rng = np.random.default_rng(0)
    hidden = torch.tensor(rng.normal(size=(rows, length, width)).astype("float32"),
                          requires_grad=True)
    token_ids = torch.tensor(rng.integers(5, VOCABULARY_SIZE, (rows, length)).astype("int32"))
    document_ids = torch.tensor(np.cumsum(rng.random((rows, length)) < 1 / 40, 1).astype("int32"))
    prefix_lengths = torch.tensor(np.where(np.arange(rows) % 2, length, 0).astype("int32"))
    norm = keras.layers.RMSNormalization(epsilon=1e-7)
    attention = DualAttention(num_heads=heads, head_dim=HEAD_DIM)
    feed_forward = SwiGLUFeedForward(intermediate_dim=int(width * 8 / 3))
    head = keras.layers.Dense(VOCABULARY_SIZE, use_bias=False)
    for layer in (norm, attention, feed_forward, head):
        layer.build((None, None, width))
    causal = torch.tril(torch.ones((length, length), dtype=torch.bool))

    def attention_per_row(x):
        return attention(norm(x), attention_mask=dual_attention_mask(document_ids, prefix_lengths))

    def attention_causal(x):
        return attention(norm(x), attention_mask=causal[None])

    def attention_fused_causal(x):
        x = norm(x)
        tables = attention.rotary_embedding(x)
        q = apply_rotary(attention.query_dense(x), *tables)
        k = apply_rotary(attention.key_dense(x), *tables)
        v = attention.value_dense(x)
        out = ops.dot_product_attention(q, k, v, is_causal=True, scale=HEAD_DIM**-0.5)
        return attention.output_dense(out)

    def feed_forward_part(x):
        return feed_forward(norm(x))

    def output_part(x):
        return token_cross_entropy(head(norm(x)), token_ids)

    return {
        "attention (per-row mask)": attention_per_row,
        "attention (plain causal mask)": attention_causal,
        "attention (fused causal, no mask)": attention_fused_causal,
        "feed-forward": feed_forward_part,
        "output layer": output_part,
    }, hidden


def measure_shape(width, rows, length, repeats, threads):
    parts, hidden = _parts(width, rows, length, threads)
    for function in parts.values():  # warm-up
        _torch_forward_backward(function, [hidden])
    seconds = {name: [] for name in parts}
    for _ in range(repeats):
        for name, function in parts.items():
            seconds[name].append(_torch_forward_backward(function, [hidden]))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    attention = median["attention (per-row mask)"] * NUM_LAYERS
    feed_forward = median["feed-forward"] * NUM_LAYERS
    output = median["output layer"]
    total = attention + feed_forward + output
    return {
        "width": width, "rows": rows, "length": length, "tokens": rows * length,
        "median_seconds": median,
        "model_seconds": total,
        "share": {"attention": attention / total, "feed_forward": feed_forward / total,
                  "output": output / total},
        "per_row_over_plain_causal": median["attention (per-row mask)"]
        / median["attention (plain causal mask)"],
        "per_row_over_fused_causal": median["attention (per-row mask)"]
        / median["attention (fused causal, no mask)"],
    }


def run_child(backend, threads, tokens, lengths, widths, repeats):
    if backend != "torch":
        raise SystemExit("scaling.py times eager forward + backward: --backend torch only")
    _common.start_backend(backend, threads)
    import json

    load_before = _common.machine()["load_average"]
    shapes = [(128, tokens // length, length) for length in lengths]
    shapes += [(width, tokens // 128, 128) for width in widths if width != 128]
    for width, rows, length in shapes:
        record = measure_shape(width, rows, length, repeats, threads)
        record.update(backend=backend, threads=threads, load_before=load_before,
                      load_after=_common.machine()["load_average"])
        print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="torch", choices=["torch"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per step")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output")
    parser.add_argument("--child", choices=_common.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bad = [n for n in args.lengths + args.widths if n < HEAD_DIM or args.tokens % n and n in args.lengths]
    if bad or min(args.threads, args.repeats) < 1:
        parser.error(f"lengths must divide --tokens and lengths/widths be >= {HEAD_DIM}; "
                     f"widths multiples of {HEAD_DIM}; received {bad or args.threads}")
    if args.child:
        run_child(args.child, args.threads, args.tokens, args.lengths, args.widths, args.repeats)
        return 0
    records = _common.run_child(__file__, args.backend, [
        "--threads", args.threads, "--tokens", args.tokens, "--repeats", args.repeats,
        "--lengths", *args.lengths, "--widths", *args.widths])
    print(f"\nforward + backward, {args.tokens} tokens per step, {NUM_LAYERS} layers, "
          f"{args.backend}, {args.threads} thread(s); medians of {args.repeats} interleaved")
    print(f"{'width':>5} {'length':>6} {'rows':>4} {'model ms':>9} {'attn':>5} {'ffn':>5} "
          f"{'out':>5} {'per-row/causal':>14} {'per-row/fused':>13}")
    for r in records:
        s = r["share"]
        print(f"{r['width']:>5} {r['length']:>6} {r['rows']:>4} {r['model_seconds'] * 1e3:>9.1f} "
              f"{s['attention']:>5.0%} {s['feed_forward']:>5.0%} {s['output']:>5.0%} "
              f"{r['per_row_over_plain_causal']:>14.2f} {r['per_row_over_fused_causal']:>13.2f}")
    _common.write_results("scaling", {
        "threads": args.threads, "tokens_per_step": args.tokens, "num_layers": NUM_LAYERS,
        "vocabulary_size": VOCABULARY_SIZE, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
