"""Self-speculative decoding and threshold MD decoding against cached AR greedy decoding.

One run, one backend, side by side on one small model trained briefly on the builtin
corpus (CPython's `pydoc_data.topics`, byte tokens): the weights matter here, since
the speed-up depends on how often the MD face's draft agrees with the AR face.

- `ar_greedy`: `DualLM.generate(decoder=ARDecoder("greedy"))`, KV cache, one AR pass per token.
- `speculative_{mode}_k{k}`: `SpeculativeDecoder(draft_length=k, draft_mode=mode).decode`
  (`"full"`: bidirectional MD pass over the whole text; `"cached"`: the masks
  against the AR KV cache); reported with
  `tokens_per_verify_pass` (AR passes saved) and whether the output equals
  `ar_greedy` token for token.
- `md_threshold_{τ}`: `MDDecoder(threshold=τ, temperature=0.0).fill` in
  semi-autoregressive blocks of `--md-block-length`, reported with its number
  of MD passes and the AR loss of the text it wrote, scored by the same model's AR
  face (quality); `ar_greedy` is scored the same way.

- `md_prefix_cache_{τ}`: the same with the prefix KV cache and its block-causal mask
  (`MDDecoder(prefix_cache=True, ...).fill_blocks`): the speed it buys and the quality the mask costs.

Every configuration runs once untimed (tracing and compilation, `compile_seconds`),
then `--repeats` rounds with the configurations interleaved (the machine's load
drifts); the median gives `tokens_per_second`, and `speedup_vs_ar` is the median of
the per-round ratios to `ar_greedy` (with their range).

    KERAS_BACKEND=jax python benchmarks/speculative_decoding.py
    KERAS_BACKEND=torch python benchmarks/speculative_decoding.py --train-steps 100

Writes JSON to `--output` (default `benchmarks/results/speculative_decoding_<backend>.json`).
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
from keras import ops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_dualobj import DualBackbone  # noqa: E402
from keras_dualobj import DualLM  # noqa: E402
from keras_dualobj.data import prepare_data  # noqa: E402
from keras_dualobj.decoders import ARDecoder  # noqa: E402
from keras_dualobj.decoders import MDDecoder  # noqa: E402
from keras_dualobj.decoders import SpeculativeDecoder  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ar-fraction", type=float, default=0.5)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--train-batch-size", type=int, default=16)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--intermediate-dim", type=int, default=342)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--num-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--draft-lengths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--draft-modes", nargs="+", default=["full", "cached", "fused"])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--md-block-length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--model-path", default=None,
        help="a .keras file: loaded if it exists (no training), else written after training",
    )
    return parser.parse_args(argv)


def load_or_train_model(args):
    """`train_model`, or the model saved at `--model-path` by an earlier run (same data)."""
    if args.model_path and Path(args.model_path).exists():
        data = prepare_data("builtin", tokenizer="byte", sequence_length=args.sequence_length,
                            batch_size=args.train_batch_size, seed=args.seed, verbose=False)
        model = keras.saving.load_model(args.model_path)
        return model, data, {"loaded_from": str(args.model_path)}
    model, data, training = train_model(args)
    if args.model_path:
        model.save(args.model_path)
    return model, data, training


def train_model(args):
    data = prepare_data(
        "builtin",
        tokenizer="byte",
        sequence_length=args.sequence_length,
        batch_size=args.train_batch_size,
        seed=args.seed,
        verbose=False,
    )
    keras.utils.set_random_seed(args.seed)
    backbone = DualBackbone(
        vocabulary_size=data.tokenizer.vocabulary_size(),
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.sequence_length + args.prompt_length + args.num_new_tokens,
    )
    model = DualLM(backbone, ar_fraction=args.ar_fraction, seed=args.seed)
    model.compile(optimizer=keras.optimizers.AdamW(args.learning_rate))
    rows = data.train_rows
    order = np.random.default_rng(args.seed).permutation(len(rows.token_ids))
    num_rows = min(len(order), args.train_steps * args.train_batch_size)
    features = {
        "token_ids": rows.token_ids[order[:num_rows]],
        "document_ids": rows.document_ids[order[:num_rows]],
    }
    epochs = max(1, args.train_steps * args.train_batch_size // num_rows)
    start = time.perf_counter()
    history = model.fit(features, batch_size=args.train_batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    training = {
        "steps": epochs * (num_rows // args.train_batch_size),
        "seconds": round(seconds, 1),
        "final_ar_loss": round(float(history.history["ar_loss"][-1]), 4),
        "final_md_loss": round(float(history.history["md_loss"][-1]), 4),
    }
    return model, data, training


def ar_loss_of_new_tokens(model, token_ids, prompt_length):
    """Mean AR negative log-likelihood (nats/token) of the generated tokens."""
    logits = ops.convert_to_numpy(ops.cast(model(token_ids), "float32"))
    logits = logits - logits.max(-1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = token_ids[:, prompt_length:]
    predicted = log_probabilities[:, prompt_length - 1 : -1]
    nll = -np.take_along_axis(predicted, targets[..., None], -1)[..., 0]
    return float(nll.mean())


def first_call(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def time_interleaved(entries, repeats):
    """Times every entry once per round, `repeats` rounds, configurations interleaved.

    The machine's load drifts (it is shared): interleaving puts every configuration
    under the same drift, and each ratio to AR is taken within one round (paired).
    """
    seconds = [[] for _ in entries]
    for _ in range(repeats):
        for times, (_, function) in zip(seconds, entries):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return seconds


def add_md_runs(record, model, token_ids, prompt_mask, args):
    """Threshold MD decoding, with full attention and with the prefix cache, each τ."""
    new_tokens = args.batch_size * args.num_new_tokens
    fill_positions = ~prompt_mask
    canvas = np.where(fill_positions, model.mask_token_id, token_ids)
    for threshold in args.thresholds:
        decoder = MDDecoder(threshold=threshold, block_length=args.md_block_length,
                            temperature=0.0)
        outputs, result = record(
            f"md_threshold_{threshold}",
            lambda d=decoder: d.fill(model, canvas, np.zeros_like(canvas), fill_positions),
            threshold=threshold,
            block_length=args.md_block_length,
        )
        tokens, num_steps = outputs["token_ids"], outputs["num_steps"]
        result["md_passes"] = num_steps
        result["tokens_per_md_pass"] = round(new_tokens / args.batch_size / num_steps, 3)
        result["ar_loss_of_output"] = round(
            ar_loss_of_new_tokens(model, tokens, args.prompt_length), 4
        )
    prompt_lengths = np.full((args.batch_size,), args.prompt_length)
    for threshold in args.thresholds:
        decoder = MDDecoder(threshold=threshold, block_length=args.md_block_length,
                            temperature=0.0, prefix_cache=True)
        outputs, result = record(
            f"md_prefix_cache_{threshold}",
            lambda d=decoder: d.fill_blocks(model, canvas, prompt_lengths),
            threshold=threshold,
            block_length=args.md_block_length,
        )
        result.update({name: outputs[name] for name in ("num_full_passes", "num_window_passes")})
        result["ar_loss_of_output"] = round(
            ar_loss_of_new_tokens(model, outputs["token_ids"], args.prompt_length), 4
        )


def main(argv=None):
    args = parse_args(argv)
    backend = keras.config.backend()
    model, data, training = load_or_train_model(args)
    print(f"{backend}: trained {training}", flush=True)
    validation = data.validation_rows.token_ids
    prompts = validation[: args.batch_size, : args.prompt_length].astype("int32")
    prompts[:, 0] = model.bos_token_id
    length = args.prompt_length + args.num_new_tokens
    token_ids = np.full((args.batch_size, length), model.pad_token_id, "int32")
    token_ids[:, : args.prompt_length] = prompts
    prompt_mask = np.arange(length)[None, :] < args.prompt_length
    prompt_mask = np.broadcast_to(prompt_mask, token_ids.shape).copy()
    new_tokens = args.batch_size * args.num_new_tokens
    results = []

    entries = []

    def record(name, function, **details):
        outputs, compile_seconds = first_call(function)
        result = {"name": name, **details, "compile_seconds": round(compile_seconds, 3)}
        results.append(result)
        entries.append((result, function))
        return outputs, result

    def speculative(draft_mode, draft_length):
        decoder = SpeculativeDecoder(draft_length=draft_length, draft_mode=draft_mode)
        stats, result = record(
            f"speculative_{draft_mode}_k{draft_length}",
            lambda: decoder.decode(model, token_ids, prompt_mask),
            draft_mode=draft_mode,
            draft_length=draft_length,
        )
        result["tokens_per_ar_pass"] = round(stats["tokens_per_verify_pass"], 3)
        result["draft_acceptance_rate"] = round(stats["draft_acceptance_rate"], 3)
        result["equals_ar_greedy"] = bool((stats["token_ids"] == reference).all())

    reference, ar_result = record(
        "ar_greedy",
        lambda: np.stack(model.generate(prompts, max_new_tokens=args.num_new_tokens,
                                        stop_token_ids=None, decoder=ARDecoder("greedy"))),
        tokens_per_ar_pass=1.0,
    )
    ar_result["ar_loss_of_output"] = round(
        ar_loss_of_new_tokens(model, reference, args.prompt_length), 4
    )
    for draft_mode in args.draft_modes:
        for draft_length in args.draft_lengths:
            speculative(draft_mode, draft_length)
    add_md_runs(record, model, token_ids, prompt_mask, args)
    seconds = time_interleaved(entries, args.repeats)
    for (result, _), times in zip(entries, seconds):
        result["seconds"] = round(statistics.median(times), 4)
        result["tokens_per_second"] = round(new_tokens / statistics.median(times), 1)
        ratios = [ar / own for ar, own in zip(seconds[0], times)]
        result["speedup_vs_ar"] = round(statistics.median(ratios), 3)
        result["speedup_vs_ar_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    for result in results:
        print(f"{backend:10s} {json.dumps(result)}", flush=True)
    report = {
        "benchmark": "speculative_decoding",
        "backend": backend,
        "keras_version": keras.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "config": vars(args),
        "num_parameters": int(model.backbone.count_params()),
        "training": training,
        "results": results,
    }
    output = Path(
        args.output
        or Path(__file__).resolve().parent / "results" / f"speculative_decoding_{backend}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
