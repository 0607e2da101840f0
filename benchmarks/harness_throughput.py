"""lm-evaluation-harness throughput per scoring mode, and the MD bound's error against S.

On one backend, with a randomly initialised `small`-preset model (speed does not
depend on the weights; 4 x 128, byte vocabulary) and a generated multiple-choice file
of `--num-requests` (context, continuation) requests (4 choices per question; contexts
of 20-60 bytes, continuations of 5-20), measured side by side in one run:

- `requests_per_second` of the adapter's `loglikelihood` (the harness's hot path) in
  modes `ar`, `prefix`, `md` (at `--mc-samples`) and `pll`, after one untimed pass
  (compilation) over the same requests;
- the MD bound's mean standard error per request (nats) for each S in
  `--standard-error-samples`, so that S can be picked for a target error (it falls as
  1/sqrt(S)). A random model predicts every token about equally badly, which hides
  most of the variance over k: pass a trained model (`--model`) for errors to plan by.

    KERAS_BACKEND=jax python benchmarks/harness_throughput.py
    KERAS_BACKEND=jax python benchmarks/harness_throughput.py --num-requests 200

Writes JSON to `--output` (default `benchmarks/results/harness_throughput_<backend>.json`).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_dualobj import DualBackbone  # noqa: E402
from keras_dualobj import DualLM  # noqa: E402
from keras_dualobj.data import ByteTokenizer  # noqa: E402
from keras_dualobj.lm_eval.model import KerasDualLM  # noqa: E402
from keras_dualobj.models.presets import get_preset  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-requests", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mc-samples", type=int, default=16)
    parser.add_argument("--modes", nargs="+", default=["ar", "prefix", "md", "pll"])
    parser.add_argument("--standard-error-samples", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--standard-error-requests", type=int, default=64)
    parser.add_argument("--model", help="a saved .keras DualLM (default: random `small`)")
    parser.add_argument("--output")
    return parser.parse_args(argv)


def make_requests(num_requests, seed=0):
    rng = np.random.default_rng(seed)
    words = "the of and to in a is that for it as was with be by on not he this are".split()

    def text(low, high):
        out = ""
        while len(out) < rng.integers(low, high):
            out += " " + words[rng.integers(len(words))]
        return out

    requests = []
    while len(requests) < num_requests:
        context = text(20, 60).strip()
        requests += [(context, text(5, 20)) for _ in range(4)]
    return requests[:num_requests]


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    if args.model:
        from keras_dualobj.models.saving import load_model

        model = load_model(args.model)
    else:
        model = DualLM(DualBackbone(**get_preset("small")["backbone"]), tokenizer=ByteTokenizer())
    requests = make_requests(args.num_requests)
    result = {
        "backend": keras.config.backend(),
        "platform": platform.platform(),
        "model": args.model or "small preset, random weights",
        "num_requests": len(requests),
        "batch_size": args.batch_size,
        "mc_samples": args.mc_samples,
        "modes": {},
    }
    for mode in args.modes:
        harness_model = KerasDualLM(
            model=model, mode=mode, mc_samples=args.mc_samples, batch_size=args.batch_size
        )
        start = time.perf_counter()
        harness_model.score_pairs(requests)
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        harness_model.score_pairs(requests)
        seconds = time.perf_counter() - start
        result["modes"][mode] = {
            "requests_per_second": len(requests) / seconds,
            "seconds": seconds,
            "first_pass_seconds": compile_seconds,
        }
        print(f"{mode:6s}: {len(requests) / seconds:8.1f} requests/s "
              f"(first pass {compile_seconds:.1f} s)", flush=True)
    subset = requests[: args.standard_error_requests]
    rows = [([model.bos_token_id] + list(model.tokenizer.tokenize(c)),
             list(model.tokenizer.tokenize(x))) for c, x in subset]
    length = max(len(a) + len(b) for a, b in rows)
    token_ids = np.full((len(rows), length), model.pad_token_id, "int32")
    target_mask = np.zeros(token_ids.shape, bool)
    for row, (context, continuation) in enumerate(rows):
        token_ids[row, : len(context) + len(continuation)] = context + continuation
        target_mask[row, len(context) : len(context) + len(continuation)] = True
    result["standard_error"] = {}
    for num_samples in args.standard_error_samples:
        scored = model.score(token_ids, "md", target_mask=target_mask,
                             num_samples=num_samples, seed=0)
        error = float(np.mean(scored["standard_error"]))
        per_token = float(np.mean(scored["standard_error"] / scored["num_tokens"]))
        result["standard_error"][str(num_samples)] = {
            "mean_standard_error_nats": error,
            "mean_standard_error_nats_per_token": per_token,
            "mean_bound_nats": float(np.mean(scored["nll"])),
        }
        print(f"S={num_samples:3d}: standard error {error:.3f} nats per request "
              f"({per_token:.4f} per token)", flush=True)
    output = Path(args.output or Path(__file__).parent / "results"
                  / f"harness_throughput_{keras.config.backend()}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
