"""The study's held-out scores beside `evaluate()`'s: AR and prefix-LM losses on the very
same tokens, and the MD face's PLL, recomputed with NumPy from the model's logits."""

import dataclasses
import json

import numpy as np
import pytest
from keras import ops

from keras_dualobj.data.packing import PackedRows
from keras_dualobj.study.held_out import held_out_pll
from keras_dualobj.study.held_out import second_half_losses
from keras_dualobj.study.results import read_results
from keras_dualobj.study.seeds import mean_results
from keras_dualobj.study.seeds import seed_statistics
from keras_dualobj.study.summary import prefix_comparison_table

from conftest import tiny_token_ids


def _numpy_second_half_nll(model, token_ids, document_ids, prefix_length):
    """Mean `-log p` over the second half's next-token targets, from the logits at
    `prefix_length` (0: causal), with the targets picked by hand."""
    length = token_ids.shape[1]
    logits = ops.convert_to_numpy(model.logits(
        ops.convert_to_tensor(token_ids), ops.convert_to_tensor(document_ids),
        ops.convert_to_tensor(np.full((len(token_ids),), prefix_length, "int32")),
    )).astype("float64")
    shifted = logits - logits.max(-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for row in range(len(token_ids)):
        for j in range(length // 2, length):
            special = token_ids[row, j] in (1, 2, 3, 4)  # <s>, </s>, <pad>, <mask>
            if special or document_ids[row, j] != document_ids[row, j - 1]:
                continue
            total -= log_probabilities[row, j - 1, token_ids[row, j]]
            count += 1
    return total / count, count


def test_ar_and_prefix_lm_are_scored_on_the_same_second_half_tokens(trained_tiny_dual_lm):
    model = trained_tiny_dual_lm
    token_ids = tiny_token_ids(batch_size=7, length=16, seed=3)
    document_ids = np.zeros_like(token_ids)
    document_ids[0, 11:] = 1  # a new document in the second half: 11 is not a target
    token_ids[1, 12] = 3  # padding is never a target
    document_ids[2, 3:] = 1  # a new document in the first half changes nothing scored
    rows = PackedRows(token_ids, document_ids, num_remainder_tokens=0, num_documents=3)
    # 3 rows per pass: the last pass holds one row.
    losses = second_half_losses(model, rows, batch_size=3)
    ar, count = _numpy_second_half_nll(model, token_ids, document_ids, 0)
    prefix, prefix_count = _numpy_second_half_nll(model, token_ids, document_ids, 8)
    assert count == prefix_count == 7 * 8 - 2
    assert losses["ar_tokens"] == losses["prefix_tokens"] == count
    np.testing.assert_allclose(losses["ar"], ar, rtol=1e-5)
    np.testing.assert_allclose(losses["prefix"], prefix, rtol=1e-5)
    # Not the whole-row AR loss: the first half's tokens have less context.
    whole = model.score(token_ids, document_ids=document_ids)
    assert whole["num_tokens"].sum() > count
    assert abs(whole["nll"].sum() / whole["num_tokens"].sum() - losses["ar"]) > 1e-4


def test_the_held_out_pll_masks_each_target_alone_over_every_row(trained_tiny_dual_lm):
    model = trained_tiny_dual_lm
    token_ids = tiny_token_ids(batch_size=3, length=8, seed=4)
    document_ids = np.zeros_like(token_ids)
    document_ids[1, 5:] = 1  # position 5 starts a document: not a target
    rows = PackedRows(token_ids, document_ids, num_remainder_tokens=0, num_documents=2)
    total, count = 0.0, 0
    for row in range(3):
        for j in range(1, 8):
            if (row, j) == (1, 5):
                continue
            masked = token_ids[row : row + 1].copy()
            masked[0, j] = model.mask_token_id
            logits = ops.convert_to_numpy(model.logits(
                ops.convert_to_tensor(masked), ops.convert_to_tensor(document_ids[row : row + 1]),
                ops.convert_to_tensor(np.array([8], "int32")),
            )).astype("float64")[0, j - 1]  # shifted: position j - 1 predicts token j
            total -= logits[token_ids[row, j]] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
            count += 1
    # Two rows per call of `score`: the last call holds one row.
    np.testing.assert_allclose(held_out_pll(model, rows, rows_per_call=2), total / count, rtol=1e-5)


@pytest.mark.backend_independent
def test_results_written_before_the_ar_suffix_loss_still_load(tmp_path):
    fields = dict(repetitions=4, unique_tokens=100, token_budget=400, num_steps=10, final_ar_loss=3.0,
                  best_ar_loss=3.0, best_ar_loss_epoch=1.0, final_md_elbo=3.5, best_md_elbo=3.5,
                  final_prefix_loss=2.9, wall_seconds=1.0, curve=[])
    old = [{**fields, "ar_fraction": a, "seed": s} for a in (0.0, 1.0) for s in (0, 1)]
    (tmp_path / "results.json").write_text(json.dumps(old))
    results = read_results(tmp_path)
    assert {r.final_ar_suffix_loss for r in results} == {None}
    assert prefix_comparison_table(mean_results(results)) == ""  # nothing to compare
    assert np.isnan(seed_statistics(results, "final_ar_suffix_loss")[(1.0, 4)]["mean"])
    # A study resumed with newer cells: the older ones show n/a, and no mean mixes them.
    results[0] = dataclasses.replace(results[0], final_ar_suffix_loss=3.1)
    means = {r.ar_fraction: r for r in mean_results(results)}
    assert means[0.0].final_ar_suffix_loss is None and means[1.0].final_ar_suffix_loss is None
    newer = [dataclasses.replace(results[1], final_ar_suffix_loss=3.2), *results[2:]]
    table = prefix_comparison_table(mean_results([results[0]] + newer))
    assert table.splitlines()[-1] == "  4 | -0.250    n/a"
