"""Where `fit()`'s training step differs from the hand-written one (issue 28, item 1).

For one backend (JAX or PyTorch), builds the model of `handwritten_loops.py` and times
its training step — the function `fit()` runs per batch, without `fit()`'s loop — with
parts of it switched off, against the hand-written step with the same weights:

- `metrics off`: no arg-max accuracies, no loss/accuracy trackers;
- `constant mask`: the causal `[length, length]` mask broadcast to every row instead of
  the per-row mask built from document ids and prefix lengths;
- `RoPE cached`: keras-hub's `RotaryEmbedding` given its cos/sin tables once, not
  recomputed in every call (PyTorch only; on JAX XLA folds them).

Each case's figure is the median of per-step **process CPU time** over interleaved
rounds: on a shared machine the wall time moves with the load, the CPU time far less.
On JAX it also compares the jaxpr equations and the compiled HLO instructions of the two
steps by kind (`--hlo`).

    python benchmarks/step_anatomy.py --backend jax --hlo
    python benchmarks/step_anatomy.py --backend torch --rounds 6

Writes `benchmarks/results/step_anatomy_<backend>.json`.
"""

import argparse
import collections
import contextlib
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import handwritten_loops as loops  # noqa: E402


@contextlib.contextmanager
def patched(patches):
    """Sets `(object, attribute, value)` triples for the duration of the block."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def switches(model, backend):
    """The parts that can be switched off, as lists of patches."""
    import keras
    from keras import ops
    from keras_hub.layers import RotaryEmbedding

    import keras_dualobj.models.dual_objective as dual_objective

    def without_accuracy(logits, token_ids, alignments=("shifted",)):
        log_normalizer = ops.logsumexp(ops.cast(logits, "float32"), axis=-1)
        terms = {"log_normalizer": log_normalizer}
        for alignment in alignments:
            targets = ops.cast(token_ids, "int32")
            if alignment == "shifted":
                targets = ops.concatenate([targets[:, 1:], targets[:, -1:]], axis=1)
            target = ops.take_along_axis(logits, targets[:, :, None], axis=-1)[:, :, 0]
            terms[alignment] = {"cross_entropy": log_normalizer - target,
                                "correct": ops.zeros_like(log_normalizer)}
        return terms

    def no_update(*args, **kwargs):
        return None

    trackers = [(getattr(model, f"{name}_tracker"), "update_state", no_update)
                for name in ("ar_loss", "md_loss", "ar_accuracy", "md_accuracy")]
    length = loops.CONFIG["sequence_length"]
    causal = ops.tril(ops.ones((length, length), dtype="bool"))
    constant_mask = [(model.backbone.attention_mask_layer, "call",
                      lambda document_ids, prefix_lengths, padding_mask=None:
                      ops.broadcast_to(causal, (ops.shape(document_ids)[0], length, length)))]
    cases = {
        "fit step": [],
        "metrics off": [(dual_objective, "position_terms", without_accuracy)] + trackers,
        "constant mask": constant_mask,
    }
    if backend == "torch":
        tables = {}

        def cached_rope(layer, inputs, start_index=0, positions=None):
            key = tuple(inputs.shape)
            if key not in tables:
                tables[key] = [ops.stop_gradient(t) for t in
                               layer._compute_cos_sin_embedding(inputs, start_index, positions)]
            return layer._apply_rotary_pos_emb(inputs, *tables[key])

        cases["RoPE cached"] = [(RotaryEmbedding, "call", cached_rope)]
    del keras
    return cases


def step_runner(model, backend, batches, patches):
    """`run(steps)` timing the model's compiled (JAX) or eager (torch) train step."""
    holder = {"index": 0}
    if backend == "jax":
        import jax

        with patched(patches):  # traced now, so the patches are compiled in
            step = jax.jit(lambda state, data: model.train_step(state, data), donate_argnums=0)
            holder["state"] = _jax_state(model)
            step = step.lower(holder["state"], (batches[0],)).compile()

        def one():
            batch = batches[holder["index"] % len(batches)]
            logs, holder["state"] = step(holder["state"], (batch,))
            holder["index"] += 1
            float(logs["loss"])
    else:
        def one():
            batch = batches[holder["index"] % len(batches)]
            holder["index"] += 1
            with patched(patches):
                float(model.train_function([(batch,)])["loss"])

    def run(steps):
        seconds = []
        _common.timed_steps(one, steps, seconds)
        return seconds

    return run


def _jax_state(model):
    import jax
    import jax.numpy as jnp

    groups = (model.trainable_variables, model.non_trainable_variables,
              model.optimizer.variables, model.metrics_variables)
    return jax.tree_util.tree_map(jnp.copy, tuple([v.value for v in g] for g in groups))


def hlo_comparison(model, weights, batch):
    """Jaxpr equations and optimised HLO instructions of fit's step and the loop's, by kind."""
    import jax
    import jax.extend.core
    import jax.numpy as jnp

    def kinds(function, *args):
        equations = collections.Counter()

        def walk(jaxpr):
            for equation in jaxpr.eqns:
                equations[equation.primitive.name] += 1
                for sub in jax.extend.core.jaxprs_in_params(equation.params):
                    walk(sub)

        walk(jax.make_jaxpr(function)(*args).jaxpr)
        text = jax.jit(function).lower(*args).compile().as_text()
        instructions = collections.Counter(
            match.group(1) for match in re.finditer(r"= \S+ ([\w-]+)\(", text))
        return equations, instructions

    fit = kinds(model.train_step, _jax_state(model), (jnp.asarray(batch),))
    loop = kinds(loops.jax_step_function(), loops.jax_initial_state(weights),
                 jnp.asarray(batch))
    result = {}
    for index, level in enumerate(("jaxpr_equations", "hlo_instructions")):
        names = set(fit[index]) | set(loop[index])
        result[level] = {
            "fit_total": sum(fit[index].values()), "loop_total": sum(loop[index].values()),
            "differences": {name: [fit[index][name], loop[index][name]] for name in sorted(
                names, key=lambda n: -abs(fit[index][n] - loop[index][n]))
                if fit[index][name] != loop[index][name]},
        }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("jax", "torch"), required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--hlo", action="store_true", help="JAX: compare jaxprs and HLO")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    _common.start_backend(args.backend, args.threads)
    import numpy as np

    config = loops.CONFIG
    rng = np.random.default_rng(0)
    batches = [rng.integers(5, config["vocabulary_size"], (config["batch_size"],
               config["sequence_length"])).astype("int32") for _ in range(4)]
    model = loops.build_pilot_model()
    backbone = model.backbone
    model.fit(batches[0], batch_size=len(batches[0]), epochs=1, verbose=0)
    weights = loops.keras_weights(backbone)
    if args.backend == "torch":
        import torch

        batches = [torch.from_numpy(b) for b in batches]
    runs = {name: step_runner(model, args.backend, batches, patches)
            for name, patches in switches(model, args.backend).items()}
    loop, _ = (loops.jax_loop if args.backend == "jax" else loops.torch_loop)(
        weights, [np.asarray(b) for b in batches])
    runs["hand-written step"] = lambda steps: _timed_cpu(loop, steps)
    for run in runs.values():
        run(1)
    record = {"backend": args.backend, "threads": args.threads,
              "load_before": _common.machine()["load_average"]}
    timings = _common.interleaved(runs, args.rounds, args.steps)
    record["load_after"] = _common.machine()["load_average"]
    loop_seconds = timings["hand-written step"]["median_step_seconds"]
    record["cases"] = {name: {"median_step_cpu_seconds": t["median_step_seconds"],
                              "loop_over_case": loop_seconds / t["median_step_seconds"]}
                       for name, t in timings.items()}
    print(f"\n{args.backend}: training step CPU time, medians of {args.rounds} x {args.steps} "
          f"interleaved steps, load {record['load_before'][0]} -> {record['load_after'][0]}")
    for name, case in record["cases"].items():
        print(f"  {name:<18} {case['median_step_cpu_seconds'] * 1e3:8.1f} ms   "
              f"speed vs hand-written {case['loop_over_case']:.3f}")
    if args.hlo and args.backend == "jax":
        record["hlo"] = hlo_comparison(model, weights, batches[0])
        for level, counts in record["hlo"].items():
            top = list(counts["differences"].items())[:12]
            print(f"  {level}: fit {counts['fit_total']}, loop {counts['loop_total']}; "
                  f"differences (fit, loop): {top}")
    _common.write_results(f"step_anatomy_{args.backend}", record, args.output)
    return 0


def _timed_cpu(step, steps):
    seconds = []
    _common.timed_steps(step, steps, seconds)
    return seconds


if __name__ == "__main__":
    sys.exit(main())
