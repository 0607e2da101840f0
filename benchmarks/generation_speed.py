"""Generation speed of one backend: AR with vs without the KV cache, and MD decoding.

Measured side by side in one run, on one randomly initialised model (speed does not
depend on the weights): AR decoding of `--num-new-tokens` tokens with the KV cache and
without it (a full causal pass over the whole padded sequence per token, the same
compiled loop otherwise), and MD decoding of the same number of tokens at several
`--md-num-steps`. Every configuration is run once untimed (tracing and compilation,
reported as `compile_seconds`), then `--repeats` times; the median is reported as
`tokens_per_second` = batch_size × num_new_tokens / seconds.

    KERAS_BACKEND=jax python benchmarks/generation_speed.py
    KERAS_BACKEND=tensorflow python benchmarks/generation_speed.py --output results.json

Writes JSON to `--output` (default `benchmarks/results/generation_speed_<backend>.json`).

The uncached baseline recomputes a causal pass over all `prompt + new` positions for
every token: fixed shapes, so it compiles once like the cached loop, and both share
the sampler loop. The cache pays off more the larger the model and the longer the
sequence; on PyTorch (eager) a cached step is dominated by Keras's per-layer Python
overhead, so its speed-up is smaller.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_dualobj import DualBackbone  # noqa: E402
from keras_dualobj import DualLM  # noqa: E402
from keras_dualobj.decoders import ARDecoder  # noqa: E402
from keras_dualobj.decoders import MDDecoder  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-new-tokens", type=int, default=256)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--vocabulary-size", type=int, default=2048)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--intermediate-dim", type=int, default=683)
    parser.add_argument("--md-num-steps", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-num-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (PyTorch's CPU threads spin when cores are shared)",
    )
    parser.add_argument("--output", default=None)
    return parser.parse_args(argv)


def timed(function, repeats):
    start = time.perf_counter()
    result = function()
    compile_seconds = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return result, compile_seconds, statistics.median(seconds), seconds


def main(argv=None):
    args = parse_args(argv)
    backend = keras.config.backend()
    if args.torch_num_threads is not None:
        if backend != "torch":
            raise ValueError(
                f"--torch-num-threads applies to KERAS_BACKEND=torch; the backend is {backend}."
            )
        import torch

        torch.set_num_threads(args.torch_num_threads)
    keras.utils.set_random_seed(args.seed)
    backbone = DualBackbone(
        vocabulary_size=args.vocabulary_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.prompt_length + args.num_new_tokens,
    )
    model = DualLM(backbone)
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(16, args.vocabulary_size, (args.batch_size, args.prompt_length))
    prompts[:, 0] = model.bos_token_id
    new_tokens = args.batch_size * args.num_new_tokens

    def record(name, function, **details):
        outputs, compile_seconds, seconds, all_seconds = timed(function, args.repeats)
        result = {
            "name": name,
            **details,
            "compile_seconds": round(compile_seconds, 4),
            "seconds": round(seconds, 4),
            "all_seconds": [round(s, 4) for s in all_seconds],
            "tokens_per_second": round(new_tokens / seconds, 1),
        }
        print(
            f"{backend:10s} {name:24s} {result['tokens_per_second']:>10.1f} tokens/s "
            f"({seconds:.3f} s; first call {compile_seconds:.2f} s)",
            flush=True,
        )
        results.append(result)
        return outputs

    results = []
    ar_options = dict(max_new_tokens=args.num_new_tokens, stop_token_ids=None)
    cached = record(
        "ar_cached", lambda: model.generate(prompts, decoder=ARDecoder("greedy"), **ar_options),
        mode="ar", use_cache=True,
    )
    uncached = record(
        "ar_uncached",
        lambda: model.generate(prompts, decoder=ARDecoder("greedy", use_cache=False),
                               **ar_options),
        mode="ar",
        use_cache=False,
    )
    same_tokens = all((a == b).all() for a, b in zip(cached, uncached))
    for num_steps in args.md_num_steps:
        record(
            f"md_{num_steps}_steps",
            # One block, argmax proposals: as measured before generate's defaults changed.
            lambda num_steps=num_steps: model.generate(
                prompts, decoder=MDDecoder(num_steps=num_steps, block_length=args.num_new_tokens,
                                           temperature=0.0), **ar_options
            ),
            mode="md",
            num_steps=num_steps,
        )

    by_name = {result["name"]: result for result in results}
    speedup = (
        by_name["ar_cached"]["tokens_per_second"] / by_name["ar_uncached"]["tokens_per_second"]
    )
    print(f"{backend:10s} AR cache speed-up: {speedup:.1f}x (same greedy tokens: {same_tokens})")
    report = {
        "benchmark": "generation_speed",
        "backend": backend,
        "keras_version": keras.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "config": vars(args),
        "num_parameters": int(backbone.count_params()),
        "ar_cache_speedup": round(speedup, 2),
        "ar_cached_equals_uncached": bool(same_tokens),
        "results": results,
    }
    output = Path(
        args.output
        or Path(__file__).resolve().parent / "results" / f"generation_speed_{backend}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
