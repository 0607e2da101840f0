"""The study's held-out scores besides `evaluate()`'s: prefix-LM and AR on the same tokens,
and the MD face's exact pseudo-log-likelihood (the paper's MD-face metric).

`evaluate()` gives each cell's held-out AR loss over every next-token target of a row.
The prefix-LM loss cannot score a row's first half (it attends both ways over it), so
it is scored on the second half only, and a token late in a row is easier to predict
than an early one (it has more context). Set beside the whole-row AR loss, the prefix-LM
loss would look better even for a pure-AR model that never learned to read a
bidirectional prefix. `second_half_losses` therefore scores both on one target mask,
the next-token targets of each row's second half, through the same `DualLM.score`
path (causal attention for AR, bidirectional over the first half for prefix-LM).
"""

import dataclasses

import numpy as np
from keras import ops

from keras_dualobj.objectives.masking import next_token_targets


def second_half_targets(model, token_ids, document_ids):
    """The tokens both losses score: `model.score`'s default targets (not special, same
    document as the left neighbour) at positions `>= length // 2`; bool `[batch, length]`.

    Example:
    >>> import numpy as np
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> ids = np.array([[1, 20, 21, 22, 23, 24]])
    >>> second_half_targets(model, ids, np.array([[0, 0, 0, 0, 1, 1]])).astype(int).tolist()
    [[0, 0, 0, 1, 0, 1]]
    """
    token_ids = np.asarray(token_ids)
    targets = ops.convert_to_numpy(
        next_token_targets(token_ids, np.asarray(document_ids), model.special_token_ids)
    ).astype(bool)
    return targets & (np.arange(token_ids.shape[1]) >= token_ids.shape[1] // 2)


def second_half_losses(model, rows, batch_size):
    """Held-out AR and prefix-LM losses on the same tokens, the second half of each row.

    Args:
        model: a `DualLM`.
        rows: `PackedRows` (`token_ids`, `document_ids`, `[num_rows, length]`).
        batch_size: rows per forward pass.

    Returns:
        dict: `ar` and `prefix` (nats per scored token: causal attention, and
        bidirectional over each row's first `length // 2` tokens), `ar_tokens` and
        `prefix_tokens` (tokens each scored; equal, one mask for both).

    Example:
    >>> import numpy as np
    >>> from keras_dualobj.data.packing import pack_documents
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> rows = pack_documents([list(range(20, 40))], sequence_length=8)
    >>> losses = second_half_losses(model, rows, batch_size=2)
    >>> losses["ar_tokens"] == losses["prefix_tokens"] == 2 * 4
    True
    """
    token_ids, document_ids = np.asarray(rows.token_ids), np.asarray(rows.document_ids)
    prefix_length = token_ids.shape[1] // 2
    totals = {"ar": 0.0, "prefix": 0.0}
    counts = {"ar": 0, "prefix": 0}
    for start in range(0, len(token_ids), batch_size):
        ids = token_ids[start : start + batch_size]
        documents = document_ids[start : start + batch_size]
        targets = second_half_targets(model, ids, documents)
        prefix = {"prefix_lengths": np.full((len(ids),), prefix_length, "int32")}
        for mode, options in (("ar", {}), ("prefix", prefix)):
            scores = model.score(ids, mode, target_mask=targets, document_ids=documents, **options)
            totals[mode] += float(scores["nll"].sum())
            counts[mode] += int(scores["num_tokens"].sum())
    return {
        "ar": totals["ar"] / max(counts["ar"], 1),
        "prefix": totals["prefix"] / max(counts["prefix"], 1),
        "ar_tokens": counts["ar"],
        "prefix_tokens": counts["prefix"],
    }


def held_out_pll(model, rows, rows_per_call=64):
    """Minus the exact pseudo-log-likelihood per token of held-out rows (nats/token).

    Every next-token target of a row (`model.score`'s default targets, the tokens the
    AR loss scores) is predicted with it alone masked and the rest of the row visible:
    the paper's MD-face score, deterministic, one forward pass per target (`score`
    runs its masked copies 64 per pass; `rows_per_call` rows are handed to it at a
    time, to bound the copies held in memory). Lower than the MD ELBO and not a bound: a
    score to compare models with, as the paper does.

    Example:
    >>> import numpy as np
    >>> from keras_dualobj.data.packing import pack_documents
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32))
    >>> rows = pack_documents([list(range(20, 40))], sequence_length=8)
    >>> 3.0 < held_out_pll(model, rows) < 5.0  # about log(64): untrained
    True
    """
    token_ids, document_ids = np.asarray(rows.token_ids), np.asarray(rows.document_ids)
    total, count = 0.0, 0
    for start in range(0, len(token_ids), rows_per_call):
        scores = model.score(
            token_ids[start : start + rows_per_call], "pll",
            document_ids=document_ids[start : start + rows_per_call],
        )
        total += float(scores["nll"].sum())
        count += int(scores["num_tokens"].sum())
    return total / max(count, 1)


def evaluation_rows(data, config):
    """The held-out rows the evaluations use (`evaluation_batches` batches of them)."""
    rows = data.validation_rows
    if config.evaluation_batches is None:
        return rows
    count = min(rows.num_rows, config.evaluation_batches * config.recipe.batch_size)
    return dataclasses.replace(
        rows, token_ids=rows.token_ids[:count], document_ids=rows.document_ids[:count]
    )
