"""Which `generate()` defaults write readable text on a byte-level model: candidates side by side.

One trained model (the README's main job: `keras-dualobj train --preset small`, byte
tokens), one set of held-out prompts, every candidate decoding setting run on the same
prompts and seeds in one process. Each completion is measured by what makes byte-level
text readable:

- `letters`: share of the new characters that are letters (held-out text: the
  `reference` row);
- `spaces`: share that are whitespace (an MD canvas filled with spaces scores 1);
- `distinct_3`: distinct character 3-grams / all 3-grams (1: no repetition; a greedy
  loop or a run of spaces scores near 0);
- `known_words`: share of the words (runs of 2+ letters) that occur in the training
  split (0 when there are none);
- `readability = letters x distinct_3 x known_words`, the figure a default is chosen by;
- `all_whitespace` / `mostly_whitespace`: share of completions that are only whitespace /
  more than 80% whitespace.

    python benchmarks/generation_defaults.py --run-dir runs/small   # a folder `train` wrote
    python benchmarks/generation_defaults.py                        # trains the main job first

Writes JSON to `--output` (default `benchmarks/results/generation_defaults_<backend>.json`).
The defaults of the decoders in `keras_dualobj/decoders/` (the signatures of `ARDecoder`
and `MDDecoder`, and `shortest_block_length`) were chosen from the table this prints
(`docs/generation.md` has it for the three byte presets); the rows `generate's
defaults` run `generate()` with `ARDecoder()` / `MDDecoder()` (given only each seed), to
check what they resolve to. Each candidate is a decoder name for
`keras_dualobj.decoders.get` and its options.
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

def candidates(new_tokens):
    """name -> `{"decoder": name, **options}` for `decoders.get`: the old defaults and their alternatives."""
    listed = {
        "ar: generate's defaults": {"decoder": "ar"},
        "md: generate's defaults": {"decoder": "md"},
        "ar greedy": {"decoder": "ar", "sampler": "greedy"},
        "ar top_p p=0.1 T=1.0": {"decoder": "ar", "sampler": "top_p", "temperature": 1.0},
    }
    for temperature in (0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
        listed[f"ar top_k k=5 T={temperature}"] = {
            "decoder": "ar", "sampler": "top_k", "temperature": temperature}
    for temperature in (0.8, 1.0):
        listed[f"ar random T={temperature}"] = {
            "decoder": "ar", "sampler": "random", "temperature": temperature}
    for remasking in ("confidence", "random"):
        for temperature in (0.0, 0.8):
            listed[f"md {remasking} T={temperature} one block"] = {
                "decoder": "md", "remasking": remasking, "temperature": temperature,
                "block_length": new_tokens}
    for block_length in (1, 2, 4, 8):
        temperatures = (0.0, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0) if block_length == 1 else (0.0, 0.5, 0.8, 1.0)
        for temperature in temperatures:
            listed[f"md confidence T={temperature} blocks of {block_length}"] = {
                "decoder": "md", "temperature": temperature, "block_length": block_length}
    # The prefix cache: each block sees the text before it, not the masks after it.
    for block_length, temperature in ((1, 0.0), (1, 0.3), (1, 0.5), (1, 0.8), (2, 0.5), (4, 0.5)):
        listed[f"md confidence T={temperature} blocks of {block_length} prefix cache"] = {
            "decoder": "md", "temperature": temperature, "block_length": block_length,
            "prefix_cache": True}
    # Fewer passes than new tokens (4 tokens per pass): one block, or blocks of 4, 8, 16.
    num_steps = new_tokens // 4
    for block_length in (4, 8, 16, new_tokens):
        name = "one block" if block_length == new_tokens else f"blocks of {block_length}"
        listed[f"md confidence T=0.5 {num_steps} steps {name}"] = {
            "decoder": "md", "temperature": 0.5, "num_steps": num_steps,
            "block_length": block_length}
    old = {
        "ar greedy": "generate's default before",
        "ar top_k k=5 T=0.8": "the summary sample before",
        "md confidence T=0.0 one block": "generate's default before",
        "md confidence T=0.8 one block": "the summary sample before",
    }
    return {f"{name} ({old[name]})" if name in old else name: options
            for name, options in listed.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a folder `keras-dualobj train` wrote (default: train one)")
    parser.add_argument("--preset", default="small", help="preset trained without --run-dir")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", help="run the candidates whose name matches this regex")
    parser.add_argument("--output")
    return parser.parse_args(argv)


def trained_run(args):
    """`args.run_dir`, or a folder the main job's command trains into now."""
    if args.run_dir:
        return Path(args.run_dir)
    from keras_dualobj.cli import main

    folder = Path(tempfile.mkdtemp()) / "run"
    command = ["train", "--preset", args.preset, "--output-dir", str(folder),
               "--threads", str(args.threads)]
    if main(command):
        raise SystemExit(f"keras-dualobj {' '.join(command)} failed")
    return folder


def held_out_prompts(data, num_prompts, prompt_length, new_tokens):
    """The first `num_prompts` held-out documents that hold a prompt and its continuation."""
    rows = data.validation_rows
    prompts, continuations = [], []
    wanted = prompt_length + new_tokens
    for tokens, documents in zip(rows.token_ids, rows.document_ids):
        for start in np.flatnonzero(tokens == data.tokenizer.bos_token_id):
            window = tokens[start : start + wanted]
            if len(window) == wanted and (documents[start : start + wanted] == documents[start]).all():
                prompts.append(window[:prompt_length].tolist())
                continuations.append(window[prompt_length:].tolist())
            if len(prompts) == num_prompts:
                return prompts, continuations
    raise SystemExit(f"only {len(prompts)} held-out documents of {wanted} tokens; ask for fewer")


def training_words(data):
    text = data.tokenizer.detokenize(data.train_rows.token_ids.reshape(-1).tolist())
    return set(re.findall(r"[A-Za-z]{2,}", text))


def readability(text, known):
    """The measures of one completion (see the module docstring)."""
    letters = sum(character.isalpha() for character in text) / max(len(text), 1)
    spaces = sum(character.isspace() for character in text) / max(len(text), 1)
    trigrams = [text[i : i + 3] for i in range(len(text) - 2)]
    distinct_3 = len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    words = re.findall(r"[A-Za-z]{2,}", text)
    known_words = sum(word in known for word in words) / len(words) if words else 0.0
    return {
        "letters": letters,
        "spaces": spaces,
        "distinct_3": distinct_3,
        "known_words": known_words,
        "readability": letters * distinct_3 * known_words,
    }


def measure(texts, known):
    """Mean of each measure over `texts`, and the share of all-whitespace completions."""
    rows = [readability(text, known) for text in texts]
    means = {name: statistics.mean(row[name] for row in rows) for name in rows[0]}
    means["readability_se"] = statistics.stdev(row["readability"] for row in rows) / len(rows) ** 0.5
    means["all_whitespace"] = statistics.mean(not text.strip() for text in texts)
    means["mostly_whitespace"] = statistics.mean(row["spaces"] > 0.8 for row in rows)
    return means


def run_candidate(model, tokenizer, prompts, options, args):
    """Completions of every prompt under `options`, for each seed; and the seconds taken."""
    from keras_dualobj.decoders import get as get_decoder

    seeds = args.seeds if is_sampled(options) else [None]
    decoder_options = {name: value for name, value in options.items() if name != "decoder"}
    texts, started = [], time.perf_counter()
    for seed in seeds:
        decoder = get_decoder(options["decoder"], seed=seed, **decoder_options)
        outputs = model.generate(
            prompts, max_new_tokens=args.new_tokens, strip_prompt=True,
            stop_token_ids=None, decoder=decoder,
        )
        texts.extend(tokenizer.detokenize([int(t) for t in row]) for row in outputs)
    return texts, time.perf_counter() - started


def is_sampled(options):
    """Whether `options` sample (the defaults do): then each seed gives other text."""
    if options["decoder"] == "ar":
        return options.get("sampler") != "greedy"
    return options.get("temperature") != 0.0 or options.get("remasking") == "random"


def print_table(results):
    names = ["letters", "spaces", "distinct_3", "known_words", "readability", "readability_se",
             "all_whitespace", "mostly_whitespace"]
    print(f"| candidate | {' | '.join(names)} |")
    print(f"|---|{'---|' * len(names)}")
    for name, result in results.items():
        print(f"| {name} | " + " | ".join(f"{result[key]:.2f}" for key in names) + " |")


def main(argv=None):
    args = parse_args(argv)
    import keras_dualobj  # noqa: F401  (registers the classes a saved model names)
    from keras_dualobj.training import RunSpec
    from keras_dualobj.utils.threads import set_compute_threads

    set_compute_threads(args.threads)
    folder = trained_run(args)
    config = json.loads((folder / "run.json").read_text())["config"]
    # The corpus the run trained on, not what `auto` finds now (a TFDS copy prepared since).
    corpus = json.loads((folder / "summary.json").read_text())["corpus"].split(" ")[0]
    if config["source"] == "auto" and corpus in ("builtin", "tfds"):
        config["source"] = corpus
    data = RunSpec.from_json(config).prepare_data(verbose=False)
    model = keras.saving.load_model(folder / "model.keras")
    prompts, continuations = held_out_prompts(
        data, args.num_prompts, args.prompt_length, args.new_tokens
    )
    known = training_words(data)
    reference = [data.tokenizer.detokenize(row) for row in continuations]
    results = {"reference (held-out continuation)": measure(reference, known)}
    samples = {}
    for name, options in candidates(args.new_tokens).items():
        if args.only and not re.search(args.only, name):
            continue
        texts, seconds = run_candidate(model, data.tokenizer, prompts, options, args)
        results[name] = {**measure(texts, known), "seconds": seconds}
        samples[name] = texts[0]
        print(f"{name}: {results[name]['readability']:.3f} ({seconds:.0f} s) {texts[0]!r}",
              flush=True)
    print_table(results)
    output = Path(args.output or Path(__file__).parent / "results" /
                  f"generation_defaults_{keras.backend.backend()}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {"run_dir": str(folder), "backend": keras.backend.backend(), "arguments": vars(args),
              "prompt": data.tokenizer.detokenize(prompts[0]), "results": results,
              "first_completion": samples}
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
