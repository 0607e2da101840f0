"""`DualLM.fit()` vs a minimal hand-written training loop in the same framework (issue 12, goal 1).

For each backend, one child process builds the pilot's model (vocabulary 69, 4 layers
x 128, 4 heads, SwiGLU 344, RoPE, rows of 128, batch 32) as a `DualLM` (α = 1, pure
AR, so both sides train the same loss) and a hand-written copy **with the same
weights**, then times them interleaved (fit, loop, fit, loop, ...; medians of per-step
times), with the same threads:

- JAX: a `jax.jit` step (forward, `jax.value_and_grad`, hand-written AdamW) on a pytree;
- PyTorch: plain tensors with `requires_grad`, `F.scaled_dot_product_attention`,
  `torch.optim.AdamW` (eager, as `fit()` runs on torch);
- TensorFlow: a `tf.function` step with `tf.Variable`s and hand-written AdamW, compiled
  with XLA exactly when `fit()` is (`model.jit_compile`).

The hand-written forward is one function written against a small per-framework
namespace (`_jax_ops`, `_torch_ops`, `_tf_ops`); the run checks that its loss on the
first batch equals the `DualLM`'s AR loss (to 1e-4), so both sides compute the same
thing. What `fit()` does beyond the loop — the per-row `[batch, length, length]`
attention mask from document ids, the metrics (AR accuracy, loss trackers), tf.data
input — is part of its measured cost.

Usage (repository root):

    python benchmarks/handwritten_loops.py --threads 1
    python benchmarks/handwritten_loops.py --backends jax --rounds 4 --steps 6

Prints a table of tokens/s and the ratio fit / loop per backend; writes
`benchmarks/results/handwritten_loops.json`.
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

CONFIG = {
    "vocabulary_size": 69, "num_layers": 4, "num_heads": 4, "hidden_dim": 128,
    "intermediate_dim": 344, "sequence_length": 128, "batch_size": 32,
}
ADAMW = {"learning_rate": 3e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.01}
EPSILON = 1e-7  # the backbone's RMSNorm epsilon


# --- The hand-written model, once for three frameworks ------------------------------


def forward(F, params, token_ids, mask, cos, sin):
    """Logits of the DualBackbone + untied head, written with framework ops `F`."""

    def rms(x, scale):
        return x * F.rsqrt(F.mean(x * x, -1) + EPSILON) * scale

    def rope(x):  # keras-hub's RotaryEmbedding: rotate halves
        half = x.shape[-1] // 2
        return x * cos + F.concat([-x[..., half:], x[..., :half]], -1) * sin

    h = F.take(params["embeddings"], token_ids)
    for layer in params["layers"]:
        x = rms(h, layer["attention_norm"])
        q = rope(F.einsum("btd,dnh->btnh", x, layer["query"]))
        k = rope(F.einsum("btd,dnh->btnh", x, layer["key"]))
        v = F.einsum("btd,dnh->btnh", x, layer["value"])
        h = h + F.einsum("btnh,nhd->btd", F.attention(q, k, v, mask), layer["output"])
        x = rms(h, layer["feed_forward_norm"])
        h = h + (F.silu(x @ layer["gate"]) * (x @ layer["up"])) @ layer["down"]
    return rms(h, params["final_norm"]) @ params["reverse_embeddings"]


def ar_loss(F, logits, token_ids):
    logits, targets = logits[:, :-1], token_ids[:, 1:]
    target_logits = F.sum(logits * F.one_hot(targets, logits.shape[-1]), -1)
    return F.mean_all(F.logsumexp(logits, -1) - target_logits)


def rope_tables(F, length, head_dim):
    import numpy as np

    inverse = 10000.0 ** -(np.arange(0, head_dim, 2, dtype="float32") / head_dim)
    angles = np.arange(length, dtype="float32")[:, None] * inverse[None]
    angles = np.concatenate([angles, angles], -1)[None, :, None, :]  # [1, t, 1, h]
    return F.constant(np.cos(angles)), F.constant(np.sin(angles))


def keras_weights(backbone):
    """The backbone's weights as NumPy, in the hand-written model's structure."""
    import numpy as np

    def get(path):
        (value,) = [w for w in backbone.weights if w.path == path]
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)

    layers = []
    for index in range(CONFIG["num_layers"]):
        prefix = f"transformer_layer_{index}/"
        layers.append({
            "attention_norm": get(prefix + "attention_norm/scale"),
            "query": get(prefix + "attention/query/kernel"),
            "key": get(prefix + "attention/key/kernel"),
            "value": get(prefix + "attention/value/kernel"),
            "output": get(prefix + "attention/attention_output/kernel"),
            "feed_forward_norm": get(prefix + "feed_forward_norm/scale"),
            "gate": get(prefix + "feed_forward/gate/kernel"),
            "up": get(prefix + "feed_forward/up/kernel"),
            "down": get(prefix + "feed_forward/down/kernel"),
        })
    return {
        "embeddings": get("token_embedding/embeddings"),
        "reverse_embeddings": get("token_embedding/reverse_embeddings"),
        "layers": layers,
        "final_norm": get("final_norm/scale"),
    }


class _Namespace:
    def __init__(self, **functions):
        self.__dict__.update(functions)


def _jax_ops():
    import jax
    import jax.numpy as jnp

    return _Namespace(
        rsqrt=jax.lax.rsqrt, mean=lambda x, a: jnp.mean(x, a, keepdims=True),
        concat=jnp.concatenate, take=lambda e, i: jnp.take(e, i, axis=0), einsum=jnp.einsum,
        attention=lambda q, k, v, m: jax.nn.dot_product_attention(
            q, k, v, mask=m[None, None], scale=q.shape[-1] ** -0.5),
        silu=jax.nn.silu, sum=jnp.sum, one_hot=jax.nn.one_hot, mean_all=jnp.mean,
        logsumexp=lambda x, a: jax.nn.logsumexp(x, a), constant=jnp.asarray,
    )


def _torch_ops():
    import torch
    import torch.nn.functional as TF

    def attention(q, k, v, m):
        out = TF.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=m)
        return out.transpose(1, 2)

    return _Namespace(
        rsqrt=torch.rsqrt, mean=lambda x, a: x.mean(a, keepdim=True), concat=torch.cat,
        take=lambda e, i: e[i], einsum=torch.einsum,
        attention=attention, silu=TF.silu, sum=torch.sum,
        one_hot=lambda t, n: TF.one_hot(t, n).float(), mean_all=torch.mean,
        logsumexp=torch.logsumexp, constant=torch.as_tensor,
    )


def _tf_ops():
    import tensorflow as tf

    def attention(q, k, v, m):
        scores = tf.einsum("btnh,bsnh->bnts", q, k) * q.shape[-1] ** -0.5
        scores = tf.where(m, scores, tf.constant(-1e9, scores.dtype))
        return tf.einsum("bnts,bsnh->btnh", tf.nn.softmax(scores, -1), v)

    return _Namespace(
        rsqrt=tf.math.rsqrt, mean=lambda x, a: tf.reduce_mean(x, a, keepdims=True),
        concat=tf.concat, take=tf.gather, einsum=tf.einsum, attention=attention,
        silu=tf.nn.silu, sum=tf.reduce_sum, one_hot=tf.one_hot, mean_all=tf.reduce_mean,
        logsumexp=tf.reduce_logsumexp, constant=tf.constant,
    )


# --- One hand-written step per framework ---------------------------------------------


def _adamw_update(variable, gradient, m, v, step, sqrt):
    """One AdamW update in plain arithmetic (Keras' formulas); returns new (w, m, v)."""
    a = ADAMW
    rate = a["learning_rate"] * sqrt(1 - a["beta_2"] ** step) / (1 - a["beta_1"] ** step)
    variable = variable - a["learning_rate"] * a["weight_decay"] * variable
    m = m + (gradient - m) * (1 - a["beta_1"])
    v = v + (gradient * gradient - v) * (1 - a["beta_2"])
    return variable - rate * m / (sqrt(v) + a["epsilon"]), m, v


def jax_initial_state(weights):
    """The hand-written JAX step's state: weights, AdamW moments, step counter."""
    import jax
    import jax.numpy as jnp

    params = jax.tree_util.tree_map(jnp.asarray, weights)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return {"params": params, "m": zeros, "v": zeros, "step": jnp.zeros((), "float32")}


def _jax_loss_function():
    import jax.numpy as jnp

    F = _jax_ops()
    cos, sin = rope_tables(F, CONFIG["sequence_length"], CONFIG["hidden_dim"] // CONFIG["num_heads"])
    causal = jnp.tril(jnp.ones((CONFIG["sequence_length"],) * 2, bool))

    def loss_fn(params, token_ids):
        return ar_loss(F, forward(F, params, token_ids, causal, cos, sin), token_ids)

    return loss_fn


def jax_step_function():
    """The hand-written JAX training step `(state, token_ids) -> (state, loss)`, not jitted."""
    import jax
    import jax.numpy as jnp

    loss_fn = _jax_loss_function()

    def train_step(state, token_ids):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], token_ids)
        step = state["step"] + 1
        updated = jax.tree_util.tree_map(
            lambda w, g, m, v: _adamw_update(w, g, m, v, step, jnp.sqrt),
            state["params"], grads, state["m"], state["v"])
        is_leaf = lambda x: isinstance(x, tuple)  # noqa: E731
        pick = lambda i: jax.tree_util.tree_map(lambda t: t[i], updated, is_leaf=is_leaf)  # noqa: E731
        return {"params": pick(0), "m": pick(1), "v": pick(2), "step": step}, loss

    return train_step


def jax_loop(weights, batches):
    """Returns (step() blocking on the loss, first-batch loss)."""
    import jax
    import jax.numpy as jnp

    state = jax_initial_state(weights)
    # Donating the state lets XLA update the weights in place, as Keras' JAX trainer does.
    train_step = jax.jit(jax_step_function(), donate_argnums=0)
    first_loss = float(jax.jit(_jax_loss_function())(state["params"], jnp.asarray(batches[0])))
    state = jax.tree_util.tree_map(jnp.copy, state)  # donated below: not the caller's arrays
    holder = {"state": state, "index": 0}

    def step():
        batch = batches[holder["index"] % len(batches)]
        holder["index"] += 1
        holder["state"], loss = train_step(holder["state"], batch)
        float(loss)

    return step, first_loss


def torch_loop(weights, batches):
    import numpy as np
    import torch

    F = _torch_ops()
    cos, sin = rope_tables(F, CONFIG["sequence_length"], CONFIG["hidden_dim"] // CONFIG["num_heads"])
    causal = torch.tril(torch.ones((CONFIG["sequence_length"],) * 2, dtype=torch.bool))

    def to_tensor(value):
        return torch.tensor(np.asarray(value), requires_grad=True)

    params = {k: ([{n: to_tensor(w) for n, w in layer.items()} for layer in v]
                  if k == "layers" else to_tensor(v)) for k, v in weights.items()}
    flat = [params["embeddings"], params["reverse_embeddings"], params["final_norm"]] + [
        w for layer in params["layers"] for w in layer.values()]
    a = ADAMW
    optimizer = torch.optim.AdamW(flat, lr=a["learning_rate"], betas=(a["beta_1"], a["beta_2"]),
                                  eps=a["epsilon"], weight_decay=a["weight_decay"])
    tensors = [torch.from_numpy(b).long() for b in batches]
    with torch.no_grad():
        first_loss = float(ar_loss(F, forward(F, params, tensors[0], causal, cos, sin), tensors[0]))
    holder = {"index": 0}

    def step():
        batch = tensors[holder["index"] % len(tensors)]
        holder["index"] += 1
        loss = ar_loss(F, forward(F, params, batch, causal, cos, sin), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss)

    return step, first_loss


def tf_loop(weights, batches, jit_compile):
    import numpy as np
    import tensorflow as tf

    F = _tf_ops()
    cos, sin = rope_tables(F, CONFIG["sequence_length"], CONFIG["hidden_dim"] // CONFIG["num_heads"])
    causal = tf.constant(np.tril(np.ones((CONFIG["sequence_length"],) * 2, bool)))
    params = tf.nest.map_structure(tf.Variable, weights)
    flat = tf.nest.flatten(params)
    moments = [(tf.Variable(tf.zeros_like(w)), tf.Variable(tf.zeros_like(w))) for w in flat]
    counter = tf.Variable(0.0)

    def loss_fn(token_ids):
        return ar_loss(F, forward(F, params, token_ids, causal, cos, sin), token_ids)

    @tf.function(jit_compile=jit_compile)
    def train_step(token_ids):
        with tf.GradientTape() as tape:
            loss = loss_fn(token_ids)
        gradients = tape.gradient(loss, flat)
        counter.assign_add(1.0)
        for w, g, (m, v) in zip(flat, gradients, moments):
            g = tf.convert_to_tensor(g)
            new_w, new_m, new_v = _adamw_update(w, g, m, v, counter, tf.sqrt)
            m.assign(new_m)
            v.assign(new_v)
            w.assign(new_w)
        return loss

    tensors = [tf.constant(b) for b in batches]
    first_loss = float(loss_fn(tensors[0]))
    holder = {"index": 0}

    def step():
        batch = tensors[holder["index"] % len(tensors)]
        holder["index"] += 1
        float(train_step(batch))

    return step, first_loss


def build_pilot_model(ar_fraction=1.0, jit_compile="auto"):
    """The pilot-shaped `DualLM` (`CONFIG`, seed 0) compiled with `ADAMW`."""
    import keras

    from keras_dualobj.models import DualBackbone
    from keras_dualobj.models import DualLM

    keras.utils.set_random_seed(0)
    backbone = DualBackbone(
        vocabulary_size=CONFIG["vocabulary_size"], num_layers=CONFIG["num_layers"],
        num_heads=CONFIG["num_heads"], hidden_dim=CONFIG["hidden_dim"],
        intermediate_dim=CONFIG["intermediate_dim"],
        max_sequence_length=CONFIG["sequence_length"])
    model = DualLM(backbone, ar_fraction=ar_fraction, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(**ADAMW), jit_compile=jit_compile)
    return model


# --- The child: fit vs the loop, interleaved -----------------------------------------


def run_child(backend, threads, rounds, steps):
    _common.start_backend(backend, threads)
    import json

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_dualobj.objectives import ar_loss as library_ar_loss

    load_before = _common.machine()["load_average"]
    length, batch_size = CONFIG["sequence_length"], CONFIG["batch_size"]
    rng = np.random.default_rng(0)
    batches = [rng.integers(5, CONFIG["vocabulary_size"], (batch_size, length)).astype("int32")
               for _ in range(8)]
    model = build_pilot_model()
    backbone = model.backbone
    zeros = np.zeros((batch_size,), "int32")
    library_loss = float(keras.ops.convert_to_numpy(library_ar_loss(
        batches[0], model.logits(batches[0], np.zeros_like(batches[0]), zeros))))
    weights = keras_weights(backbone)
    if backend == "jax":
        loop, loop_loss = jax_loop(weights, batches)
    elif backend == "torch":
        loop, loop_loss = torch_loop(weights, batches)
    else:
        loop, loop_loss = tf_loop(weights, batches, bool(model.jit_compile))
    if abs(loop_loss - library_loss) > 1e-4:
        raise SystemExit(f"{backend}: the hand-written loss {loop_loss} differs from "
                         f"DualLM's {library_loss}: not the same model")
    dataset = tf.data.Dataset.from_tensor_slices(np.concatenate(batches)).batch(batch_size).repeat()
    cpu_seconds = {"fit": [], "loop": []}
    fit_run = _common.fit_step_timer(model, dataset, cpu_seconds["fit"])
    fit_run(2)  # compiles
    loop()  # compiles
    cpu_seconds["fit"].clear()
    timings = _common.interleaved(
        {"fit": fit_run, "loop": lambda n: _common.timed_steps(loop, n, cpu_seconds["loop"])},
        rounds, steps)
    tokens = batch_size * length
    record = {
        "backend": backend, "threads": threads, "jit_compile": str(model.jit_compile),
        "first_batch_loss": {"fit": library_loss, "loop": loop_loss},
        "load_before": load_before, "load_after": _common.machine()["load_average"],
    }
    for name, timing in timings.items():
        record[name] = dict(timing, tokens_per_second=tokens / timing["median_step_seconds"],
                            median_step_cpu_seconds=statistics.median(cpu_seconds[name]))
    record["fit_over_loop"] = (record["fit"]["tokens_per_second"]
                               / record["loop"]["tokens_per_second"])
    # Process CPU time (all threads) per step: what each side costs, whatever the load.
    record["fit_over_loop_cpu"] = (record["loop"]["median_step_cpu_seconds"]
                                   / record["fit"]["median_step_cpu_seconds"])
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(_common.BACKENDS),
                        choices=_common.BACKENDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per case and round")
    parser.add_argument("--output")
    parser.add_argument("--child", choices=_common.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.steps) < 1:
        parser.error(f"--threads, --rounds and --steps must be >= 1; received "
                     f"{args.threads}, {args.rounds}, {args.steps}")
    if args.child:
        run_child(args.child, args.threads, args.rounds, args.steps)
        return 0
    records = []
    for backend in args.backends:
        records += _common.run_child(__file__, backend, [
            "--threads", args.threads, "--rounds", args.rounds, "--steps", args.steps])
    print(f"\nfit() vs a hand-written loop, {CONFIG}, α = 1, AdamW, {args.threads} thread(s); "
          f"medians of {args.rounds} x {args.steps} interleaved steps")
    print(f"{'backend':<11} {'loop':<22} {'fit tok/s':>10} {'loop tok/s':>10} {'fit/loop':>8} "
          f"{'(CPU time)':>10} {'load':>14}")
    kinds = {"jax": "jax.jit + AdamW", "torch": "eager torch + AdamW",
             "tensorflow": "tf.function + AdamW"}
    for r in records:
        print(f"{r['backend']:<11} {kinds[r['backend']]:<22} {r['fit']['tokens_per_second']:>10,.0f} "
              f"{r['loop']['tokens_per_second']:>10,.0f} {r['fit_over_loop']:>8.3f} "
              f"{r['fit_over_loop_cpu']:>10.3f} "
              f"{r['load_before'][0]:>6.1f}->{r['load_after'][0]:<6.1f}")
    _common.write_results("handwritten_loops", {
        "config": CONFIG, "adamw": ADAMW, "threads": args.threads, "rounds": args.rounds,
        "steps": args.steps, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
