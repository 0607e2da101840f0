"""What the dual objective costs the AR face of a converted model, and how fast MD appears.

A tiny random keras-hub Llama 3 (2 layers x 64, 4 query / 2 key-value heads, Llama 3.1
RoPE scaling, byte-level `Llama3Tokenizer`) is pre-trained on its own AR objective
with keras-hub's `fit` until its held-out loss flattens, converted with
`from_keras_hub`, and then trained N more steps on the dual objective at each α,
each time from the same converted weights. The held-out AR loss and MD ELBO (nats
per token, `DualLM.evaluate`) are measured before and every N/4 steps. α = 1 is
plain continued AR training: the baseline the other α are compared with.

    python benchmarks/from_keras_hub_adaptation.py --steps 400

CPU, 1 thread by default; the corpus is CPython's built-in documentation (the last
64 rows held out). Writes `benchmarks/results/from_keras_hub_adaptation.json`.
"""

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

ALPHAS = ("1", "63/64", "1/2")
SEQUENCE_LENGTH, BATCH_SIZE, HELD_OUT_ROWS = 64, 16, 64


def _rows(tokenizer, characters):
    import keras
    import numpy as np
    from pydoc_data import topics

    text = " ".join(topics.topics[name] for name in sorted(topics.topics))[:characters]
    stream = keras.ops.convert_to_numpy(tokenizer(text)).astype("int32")
    width = SEQUENCE_LENGTH - 1
    body = stream[: len(stream) // width * width].reshape(-1, width)
    bos = np.full((len(body), 1), tokenizer.start_token_id, "int32")
    rows = np.concatenate([bos, body], axis=1)
    return rows[:-HELD_OUT_ROWS], rows[-HELD_OUT_ROWS:]


def _pretrained_hub_model(train_rows, steps, seed):
    import keras
    import numpy as np

    from keras_dualobj.convert.keras_hub_tiny import tiny_keras_hub_model

    keras.utils.set_random_seed(seed)
    task = tiny_keras_hub_model("llama3", num_layers=2, hidden_dim=64, intermediate_dim=128)
    tokenizer = task.preprocessor.tokenizer
    task.preprocessor = None
    task.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01))
    inputs = {"token_ids": train_rows[:, :-1], "padding_mask": np.ones_like(train_rows[:, :-1])}
    epochs = -(-steps * BATCH_SIZE // len(train_rows))
    task.fit(inputs, train_rows[:, 1:], batch_size=BATCH_SIZE, epochs=epochs,
             steps_per_epoch=min(steps, len(train_rows) // BATCH_SIZE), verbose=0)
    return task, tokenizer


def _held_out(model, rows):
    result = model.evaluate(rows, batch_size=32, return_dict=True, verbose=0)
    return {"ar_loss": round(result["ar_loss"], 4), "md_elbo": round(result["md_loss"], 4)}


def _adapt(hub_task, tokenizer, train_rows, held_out_rows, alpha, steps, seed):
    """Held-out losses every `steps / 4` dual steps from the converted weights."""
    import keras

    from keras_dualobj.convert import from_keras_hub

    keras.utils.set_random_seed(seed)
    model = from_keras_hub(hub_task, tokenizer=tokenizer, sequence_length=SEQUENCE_LENGTH,
                           ar_fraction=float(Fraction(alpha)), seed=seed)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    curve = [{"step": 0, **_held_out(model, held_out_rows)}]
    segment = steps // 4
    started = time.perf_counter()
    for index in range(4):
        history = model.fit(train_rows, batch_size=BATCH_SIZE, epochs=index + 1,
                            initial_epoch=index, steps_per_epoch=segment, verbose=0)
        training = {name: round(values[-1], 4) for name, values in history.history.items()}
        curve.append({"step": segment * (index + 1), **_held_out(model, held_out_rows),
                      "training": training})
    return {"alpha": alpha, "curve": curve,
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="torch", choices=_common.BACKENDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pretrain-steps", type=int, default=2400)
    parser.add_argument("--steps", type=int, default=400, help="dual steps per α")
    parser.add_argument("--characters", type=int, default=240_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    _common.start_backend(args.backend, args.threads)

    from keras_dualobj.convert.keras_hub_tiny import tiny_tokenizer

    train_rows, held_out_rows = _rows(tiny_tokenizer("llama3"), args.characters)
    hub_task, tokenizer = _pretrained_hub_model(train_rows, args.pretrain_steps, args.seed)
    runs = [
        _adapt(hub_task, tokenizer, train_rows, held_out_rows, alpha, args.steps, args.seed)
        for alpha in ALPHAS
    ]
    print(f"AR pre-training: {args.pretrain_steps} steps; then {args.steps} dual steps "
          f"of {BATCH_SIZE} x {SEQUENCE_LENGTH} per α ({len(train_rows)} training rows)")
    print(f"{'α':>6} | {'step':>5} | {'AR loss':>8} | {'MD ELBO':>8}")
    for run in runs:
        for point in run["curve"]:
            print(f"{run['alpha']:>6} | {point['step']:>5} | {point['ar_loss']:8.3f} | "
                  f"{point['md_elbo']:8.3f}")
    _common.write_results("from_keras_hub_adaptation", {
        "machine": _common.machine(), "backend": args.backend, "threads": args.threads,
        "pretrain_steps": args.pretrain_steps, "steps": args.steps,
        "batch_size": BATCH_SIZE, "sequence_length": SEQUENCE_LENGTH,
        "training_rows": len(train_rows), "held_out_rows": len(held_out_rows), "runs": runs,
    }, args.output)


if __name__ == "__main__":
    main()
