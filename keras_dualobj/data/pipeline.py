"""tf.data pipelines that feed `DualLM.fit()` / `evaluate()` on every backend.

Batches are dicts `{"token_ids": int32 [batch, length], "document_ids": int32
[batch, length]}` with no labels: the model builds its own targets. Keras 3
accepts a `tf.data.Dataset` under JAX and PyTorch too (it converts each batch
to NumPy), so one pipeline serves all three backends.

The training stream is R epochs over the first `plan.rows_per_epoch` rows;
epoch e visits them in the order `epoch_row_order(rows_per_epoch, e, seed)`,
a permutation drawn with a stateless Philox generator keyed on (seed, e).
That makes the stream a pure function of (rows, plan, seed): rerunning gives
the same batches, and resuming at step s is a jump, not a replay.
"""

import numpy as np
import tensorflow as tf

from keras_dualobj.data import special_tokens
from keras_dualobj.data.packing import PackedRows
from keras_dualobj.data.repetition import RepetitionPlan, _validate_start_step


def _validate_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an int. Received: {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"`seed` must be in [0, 2**63). Received: {seed}")


def epoch_row_order(num_rows, epoch, seed):
    """The permutation of `range(num_rows)` used in epoch `epoch` for `seed`.

    Args:
        num_rows: rows in an epoch.
        epoch: epoch index (0-based), int or scalar int64 tensor.
        seed: int.

    Returns:
        An int32 tensor of shape `[num_rows]`.

    Example:

    >>> order = epoch_row_order(5, epoch=0, seed=7)
    >>> sorted(order.numpy().tolist())
    [0, 1, 2, 3, 4]
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    scores = tf.random.stateless_uniform([num_rows], seed=key, alg="philox")
    return tf.argsort(scores, stable=True)


def training_row_order(plan, seed):
    """Row indices of every step of the plan: `[repetitions, rows_per_epoch]`.

    Entry `[e, i]` is the training row (index into the packed training split)
    at position i of epoch e; step s of epoch e uses positions
    `s * batch_size ... (s + 1) * batch_size - 1`. This is exactly what
    `make_training_dataset` serves, so it documents what the model saw.

    Example:

    >>> from keras_dualobj.data import pack_documents, plan_repetition
    >>> rows = pack_documents([list(range(16, 116))] * 4, sequence_length=10)
    >>> plan = plan_repetition(rows, batch_size=8, repetitions=3)
    >>> training_row_order(plan, seed=0).shape
    (3, 40)
    """
    _validate_seed(seed)
    return np.stack(
        [
            epoch_row_order(plan.rows_per_epoch, epoch, seed).numpy()
            for epoch in range(plan.repetitions)
        ]
    )


def _row_tensors(rows, num_rows):
    return (
        tf.constant(rows.token_ids[:num_rows], dtype=tf.int32),
        tf.constant(rows.document_ids[:num_rows], dtype=tf.int32),
    )


def make_training_dataset(rows, plan, *, seed, start_step=0):
    """The training stream: R reshuffled epochs over the plan's rows.

    Yields `plan.total_steps - start_step` batches of `plan.batch_size` rows;
    every epoch holds each of the first `plan.rows_per_epoch` rows exactly
    once, in an order fixed by `(seed, epoch)`. Deterministic; prefetched.

    Resuming: `make_training_dataset(rows, plan, seed=seed, start_step=s)`
    yields exactly the batches s, s+1, ... of the uninterrupted stream (it
    starts at epoch `s // steps_per_epoch` directly, replaying nothing). Use
    `plan.fit_arguments(s)` for `model.fit` at an epoch boundary.

    Args:
        rows: `PackedRows` of the training split (the plan was built from it).
        plan: a `RepetitionPlan`.
        seed: int, decides every epoch's order.
        start_step: int in [0, plan.total_steps].

    Returns:
        A `tf.data.Dataset` of `{"token_ids", "document_ids"}` int32 batches
        with known cardinality.

    Example:

    >>> from keras_dualobj.data import pack_documents, plan_repetition
    >>> rows = pack_documents([list(range(16, 116))] * 4, sequence_length=10)
    >>> plan = plan_repetition(rows, batch_size=8, repetitions=2)
    >>> dataset = make_training_dataset(rows, plan, seed=0)
    >>> int(dataset.cardinality()), dataset.element_spec["token_ids"].shape
    (10, TensorShape([8, 10]))
    """
    if not isinstance(rows, PackedRows):
        raise TypeError(f"`rows` must be PackedRows. Received: {type(rows).__name__}")
    if not isinstance(plan, RepetitionPlan):
        raise TypeError(
            f"`plan` must be a RepetitionPlan. Received: {type(plan).__name__}"
        )
    if rows.sequence_length != plan.sequence_length or rows.num_rows < plan.rows_per_epoch:
        raise ValueError(
            f"The plan ({plan.rows_per_epoch} rows of {plan.sequence_length}) does "
            f"not fit these rows ({rows.num_rows} rows of {rows.sequence_length}); "
            "build the plan from the same training rows."
        )
    _validate_seed(seed)
    _validate_start_step(plan, start_step)
    token_ids, document_ids = _row_tensors(rows, plan.rows_per_epoch)
    steps_per_epoch, batch_size = plan.steps_per_epoch, plan.batch_size
    start_epoch, skip_steps = divmod(start_step, steps_per_epoch)

    def epoch_batches(epoch):
        order = epoch_row_order(plan.rows_per_epoch, epoch, seed)
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order, [steps_per_epoch, batch_size])
        )

    def gather(batch_rows):
        return {
            "token_ids": tf.gather(token_ids, batch_rows),
            "document_ids": tf.gather(document_ids, batch_rows),
        }

    dataset = (
        tf.data.Dataset.range(start_epoch, plan.repetitions)
        .flat_map(epoch_batches)
        .skip(skip_steps)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .apply(tf.data.experimental.assert_cardinality(plan.total_steps - start_step))
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset


def make_evaluation_dataset(rows, batch_size):
    """Held-out rows in their stored order, every row exactly once, in equal batches.

    The last batch holds the leftover rows and is filled up with padding rows
    (`padding_rows`: `<pad>` tokens, each position its own document), which predict
    nothing and so count nowhere: `DualLM.evaluate()` weighs every batch by its
    scored tokens. Every batch has the same shape, so the evaluation step compiles
    once and splits over any number of batch shards (`keras.distribution`).

    Args:
        rows: `PackedRows` of the validation (or test) split.
        batch_size: rows per batch, >= 1.

    Returns:
        A `tf.data.Dataset` of `{"token_ids", "document_ids"}` int32 batches of
        `batch_size` rows (`ceil(num_rows / batch_size)` batches).

    Example:

    >>> from keras_dualobj.data import pack_documents
    >>> rows = pack_documents([list(range(16, 116))] * 2, sequence_length=10)
    >>> batches = list(make_evaluation_dataset(rows, 8))
    >>> [int(b["token_ids"].shape[0]) for b in batches], rows.num_rows
    ([8, 8, 8], 20)
    >>> batches[-1]["token_ids"][4:].numpy().tolist() == [[3] * 10] * 4
    True
    """
    if not isinstance(rows, PackedRows):
        raise TypeError(f"`rows` must be PackedRows. Received: {type(rows).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1. Received: {batch_size!r}")
    padding = padding_rows(-rows.num_rows % batch_size, rows.sequence_length)
    features = {
        "token_ids": np.concatenate([rows.token_ids, padding[0]]),
        "document_ids": np.concatenate([rows.document_ids, padding[1]]),
    }
    return (
        tf.data.Dataset.from_tensor_slices(
            {name: tf.constant(value, dtype=tf.int32) for name, value in features.items()}
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def padding_rows(num_rows, sequence_length):
    """`(token_ids, document_ids)` of rows that predict nothing: `<pad>` tokens, each
    position its own document (ids below 0, which no packed document has), so no
    position has a next-token or masked-token target whatever the model's pad id.

    Example:

    >>> token_ids, document_ids = padding_rows(1, 4)
    >>> token_ids.tolist(), document_ids.tolist()
    ([[3, 3, 3, 3]], [[-1, -2, -3, -4]])
    """
    token_ids = np.full((num_rows, sequence_length), special_tokens.PAD_TOKEN_ID, "int32")
    document_ids = np.broadcast_to(-1 - np.arange(sequence_length, dtype="int32"),
                                   (num_rows, sequence_length))
    return token_ids, document_ids
