"""PyTorch KV-cache decoding: in-place cache writes vs the functional update, vs no cache.

Issue 12 goal 4. On eager PyTorch the functional update (`ops.slice_update` of the
keys and values, `ops.stack` of both, `ops.stack` of every layer) copied the whole
cache three times per layer and decoded token; `layers.dual_attention.update_cache`
now writes in place there. This runs AR decoding of `--num-new-tokens` tokens on one
random model three ways, interleaved (in place, functional, uncached) for `--rounds`
rounds, and prints the median times, their ratios and whether all three produced the
same tokens.

    KERAS_BACKEND=torch python benchmarks/kv_cache_update.py --threads 1
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dualobj.layers.dual_attention as dual_attention  # noqa: E402
import keras_dualobj.models.ar_generation as ar_generation  # noqa: E402
from keras_dualobj import DualBackbone  # noqa: E402
from keras_dualobj import DualLM  # noqa: E402
from keras_dualobj.decoders import ARDecoder  # noqa: E402


def use_in_place_cache(in_place):
    """Switches the cache update both modules read (a benchmark-only switch)."""
    dual_attention.writes_cache_in_place = ar_generation.writes_cache_in_place = (
        lambda: in_place
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-new-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if keras.backend.backend() != "torch":
        parser.error("this benchmark measures the PyTorch path: run it with KERAS_BACKEND=torch")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = DualBackbone(
        vocabulary_size=2048, num_layers=4, num_heads=4, hidden_dim=256,
        intermediate_dim=683, max_sequence_length=16 + args.num_new_tokens,
    )
    model = DualLM(backbone, ar_fraction=0.5)
    prompt = np.random.default_rng(0).integers(16, 2048, (2, 16)).astype("int32")
    ways = {"in_place": (True, True), "functional": (False, True), "uncached": (True, False)}

    def decode(in_place, use_cache):
        use_in_place_cache(in_place)
        started = time.perf_counter()
        tokens = model.generate(
            prompt, max_new_tokens=args.num_new_tokens, stop_token_ids=None,
            strip_prompt=False, decoder=ARDecoder("greedy", use_cache=use_cache),
        )
        return time.perf_counter() - started, keras.ops.convert_to_numpy(tokens)

    for in_place, use_cache in ways.values():
        decode(in_place, use_cache)  # warm-up
    seconds = {name: [] for name in ways}
    tokens = {}
    for _ in range(args.rounds):
        for name, (in_place, use_cache) in ways.items():
            elapsed, tokens[name] = decode(in_place, use_cache)
            seconds[name].append(elapsed)
    use_in_place_cache(True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    result = {
        "median_seconds": median,
        "in_place_speedup_over_uncached": median["uncached"] / median["in_place"],
        "functional_speedup_over_uncached": median["uncached"] / median["functional"],
        "in_place_over_functional": median["functional"] / median["in_place"],
        "same_tokens": all(np.array_equal(tokens["in_place"], t) for t in tokens.values()),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
