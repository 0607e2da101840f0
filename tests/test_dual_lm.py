"""DualLM: the dual objective under fit(), attention modes, determinism, saving, errors."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj import objectives

from conftest import TINY_BACKBONE
from conftest import tiny_backbone
from conftest import tiny_token_ids
from model_checks import backbone_inputs
from model_checks import run_backbone_test
from model_checks import run_task_test

VOCAB = TINY_BACKBONE["vocabulary_size"]


def _np(x):
    return ops.convert_to_numpy(x)


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_alpha_one_is_the_plain_next_token_cross_entropy():
    model = DualLM(tiny_backbone(), ar_fraction=1.0, seed=0)
    token_ids = tiny_token_ids()
    forward = model(token_ids, training=True)
    assert _np(forward["ar_rows"]).all()
    loss = model.compute_loss(x=token_ids, y_pred=forward, training=True)

    log_probs = _log_softmax(_np(model(token_ids)).astype("float64"))
    targets = token_ids[:, 1:]
    expected = -np.take_along_axis(log_probs[:, :-1], targets[..., None], -1).mean()
    np.testing.assert_allclose(_np(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("md_variant", ["shifted", "unshifted"])
def test_alpha_zero_is_the_md_loss(md_variant):
    model = DualLM(tiny_backbone(), ar_fraction=0.0, md_variant=md_variant, seed=0)
    token_ids = tiny_token_ids()
    forward = model(token_ids, training=True)
    assert not _np(forward["ar_rows"]).any()
    masked = _np(forward["masked_positions"])
    assert masked.any(axis=1).all()  # every MD row masks at least one token
    assert not masked[:, 0].any()  # <s> is never masked
    loss = model.compute_loss(x=token_ids, y_pred=forward, training=True)

    input_ids = np.where(masked, model.mask_token_id, token_ids)
    bidirectional = model(input_ids, mode="bidirectional")
    log_probs = _log_softmax(_np(bidirectional).astype("float64"))
    t_hat = _np(forward["mask_fraction"])
    maskable = _np(forward["maskable_positions"])
    shift = 1 if md_variant == "shifted" else 0
    total = 0.0
    for b, j in zip(*np.nonzero(masked)):
        total += -log_probs[b, j - shift, token_ids[b, j]] / t_hat[b]
    np.testing.assert_allclose(_np(loss), total / maskable.sum(), rtol=1e-5)


def test_half_the_rows_train_each_objective():
    model = DualLM(tiny_backbone(), ar_fraction=0.5, seed=3)
    token_ids = tiny_token_ids()
    for _ in range(5):
        forward = model(token_ids, training=True)
        ar_rows = _np(forward["ar_rows"])
        masked = _np(forward["masked_positions"])
        assert ar_rows.sum() == 4
        assert not masked[ar_rows].any()  # AR rows see clean input
        assert masked[~ar_rows].any(axis=1).all()


def test_non_integer_share_is_right_in_expectation():
    model = DualLM(tiny_backbone(), ar_fraction=0.3, seed=5)
    token_ids = tiny_token_ids(batch_size=5, length=4)
    counts = [_np(model(token_ids, training=True)["ar_rows"]).sum() for _ in range(100)]
    assert set(counts) <= {1, 2}
    assert abs(np.mean(counts) - 1.5) < 0.2


def test_training_loss_mixes_the_row_losses():
    model = DualLM(tiny_backbone(), ar_fraction=0.5, ar_loss_weight=2.0, seed=1)
    token_ids = tiny_token_ids()
    forward = model(token_ids, training=True)
    ar_rows = _np(forward["ar_rows"])
    loss = model.compute_loss(x=token_ids, y_pred=forward, training=True)
    ar = objectives.ar_loss(token_ids, forward["logits"], row_mask=ar_rows)
    md = objectives.md_loss(
        token_ids,
        forward["logits"],
        forward["masked_positions"],
        forward["mask_fraction"],
        forward["maskable_positions"],
        row_mask=~ar_rows,
    )
    share = ar_rows.mean()
    np.testing.assert_allclose(
        _np(loss), share * 2.0 * _np(ar) + (1 - share) * _np(md), rtol=1e-5
    )


def test_causal_rows_never_see_the_future_and_bidirectional_rows_do(trained_tiny_dual_lm):
    model = trained_tiny_dual_lm
    token_ids = tiny_token_ids(batch_size=2, length=12)
    perturbed = token_ids.copy()
    j = 7
    perturbed[:, j] = (perturbed[:, j] + 1 - 5) % (VOCAB - 5) + 5
    for mode in ("causal", "bidirectional"):
        before = _np(model(token_ids, mode=mode))
        after = _np(model(perturbed, mode=mode))
        changed = np.abs(before - after).max(axis=(0, 2)) > 1e-6
        if mode == "causal":
            assert not changed[:j].any()
            assert changed[j:].all()
        else:
            assert changed[:j].all()


def test_prefix_mode_is_bidirectional_over_the_prefix_only(trained_tiny_dual_lm):
    model = trained_tiny_dual_lm
    token_ids = tiny_token_ids(batch_size=1, length=12)
    prefix = 5

    def changed_by(position):
        perturbed = token_ids.copy()
        perturbed[0, position] = (perturbed[0, position] + 1 - 5) % (VOCAB - 5) + 5
        lengths = np.array([prefix])
        before = _np(model({"token_ids": token_ids, "prefix_lengths": lengths}, mode="prefix"))
        after = _np(model({"token_ids": perturbed, "prefix_lengths": lengths}, mode="prefix"))
        return np.abs(before - after).max(axis=(0, 2)) > 1e-6

    # Inside the prefix every position sees every other prefix position, earlier ones too.
    inside = changed_by(3)
    assert inside.all()  # positions 0..2 see 3 (bidirectional), 4.. see it as their past
    # After the prefix attention is causal: a token at 8 is invisible to 0..7.
    after_prefix = changed_by(8)
    assert not after_prefix[:8].any()
    assert after_prefix[8:].all()
    # The last prefix position is seen by the earlier ones, the first completion token not.
    assert changed_by(prefix - 1)[: prefix - 1].all()
    assert not changed_by(prefix)[:prefix].any()


def test_documents_never_attend_to_each_other(trained_tiny_dual_lm):
    model = trained_tiny_dual_lm
    token_ids = tiny_token_ids(batch_size=2, length=12)
    document_ids = np.zeros_like(token_ids)
    document_ids[:, 6:] = 1
    token_ids[:, 6] = 1
    perturbed = token_ids.copy()
    perturbed[:, 8] = (perturbed[:, 8] + 1 - 5) % (VOCAB - 5) + 5
    for mode in ("causal", "bidirectional"):
        before = _np(model({"token_ids": token_ids, "document_ids": document_ids}, mode=mode))
        after = _np(model({"token_ids": perturbed, "document_ids": document_ids}, mode=mode))
        changed = np.abs(before - after).max(axis=(0, 2)) > 1e-6
        assert not changed[:6].any(), mode
        assert changed[8] if mode == "causal" else changed[6:].all()


@pytest.mark.parametrize("ar_fraction", [0.0, 0.5, 1.0])
def test_overfits_one_small_batch(ar_fraction):
    # Held-out-style comparison with evaluate(): exact AR loss and an 8-sample MD ELBO
    # with fixed masks, so the criterion does not depend on one noisy training step.
    # MD learns more slowly than AR (the paper's point); at lr 1e-2 it stalls.
    backbone = tiny_backbone(hidden_dim=64, intermediate_dim=128)
    model = DualLM(backbone, ar_fraction=ar_fraction, elbo_samples=8, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    token_ids = tiny_token_ids(batch_size=2, length=8)
    before = model.evaluate(token_ids, batch_size=2, verbose=0, return_dict=True)
    steps = 100
    model.fit(np.tile(token_ids, (steps, 1)), batch_size=2, epochs=1, shuffle=False, verbose=0)
    after = model.evaluate(token_ids, batch_size=2, verbose=0, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"], (before, after)


def test_same_seed_gives_the_same_losses():
    token_ids = tiny_token_ids(batch_size=8, length=16)

    def run():
        keras.utils.set_random_seed(42)
        model = DualLM(tiny_backbone(), ar_fraction=0.5, seed=7)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(token_ids, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return history.history

    first, second = run(), run()
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=1e-6, err_msg=name)


def test_logs_name_each_objective_and_evaluate_reports_both():
    token_ids = tiny_token_ids(batch_size=4, length=16)
    expected_train = {
        0.0: {"loss", "md_loss", "md_accuracy"},
        1.0: {"loss", "ar_loss", "ar_accuracy"},
        0.5: {"loss", "ar_loss", "ar_accuracy", "md_loss", "md_accuracy"},
    }
    for ar_fraction, names in expected_train.items():
        model = DualLM(tiny_backbone(), ar_fraction=ar_fraction, seed=0)
        model.compile()
        history = model.fit(token_ids, batch_size=4, epochs=1, verbose=0)
        assert set(history.history) == names
        logs = model.evaluate(token_ids, batch_size=4, verbose=0, return_dict=True)
        assert set(logs) == {"loss", "ar_loss", "ar_accuracy", "md_loss", "md_accuracy"}
        expected_loss = ar_fraction * logs["ar_loss"] + (1 - ar_fraction) * logs["md_loss"]
        np.testing.assert_allclose(logs["loss"], expected_loss, rtol=1e-5)


def test_evaluate_is_repeatable_and_elbo_depends_on_its_seed():
    token_ids = tiny_token_ids(batch_size=8, length=16)
    model = DualLM(tiny_backbone(), elbo_samples=2, elbo_seed=3)
    model.compile()
    first = model.evaluate(token_ids, batch_size=4, verbose=0, return_dict=True)
    second = model.evaluate(token_ids, batch_size=4, verbose=0, return_dict=True)
    assert first == second
    other = DualLM(model.backbone, elbo_samples=2, elbo_seed=4)
    other.compile()
    third = other.evaluate(token_ids, batch_size=4, verbose=0, return_dict=True)
    assert third["ar_loss"] == pytest.approx(first["ar_loss"], rel=1e-6)
    assert third["md_loss"] != pytest.approx(first["md_loss"], rel=1e-6)


def test_z_loss_is_added_with_its_weight():
    token_ids = tiny_token_ids()
    model = DualLM(tiny_backbone(), ar_fraction=1.0, z_loss_weight=0.5, seed=0)
    forward = model(token_ids, training=True)
    loss = model.compute_loss(x=token_ids, y_pred=forward, training=True)
    plain = objectives.ar_loss(token_ids, forward["logits"])
    targets = objectives.next_token_targets(token_ids)
    z = objectives.z_loss(forward["logits"], targets)
    np.testing.assert_allclose(_np(loss), _np(plain) + 0.5 * _np(z), rtol=1e-5)


@pytest.mark.parametrize("md_variant", ["shifted", "unshifted"])
def test_the_shared_pass_over_the_logits_gives_each_objectives_own_terms(md_variant):
    # The training step reads the logits once for every term; each must equal the term
    # computed alone by its pure function (issue 28, the loss computed once).
    shifted = md_variant == "shifted"
    model = DualLM(tiny_backbone(), ar_fraction=0.5, md_variant=md_variant,
                   z_loss_weight=0.25, seed=3)
    token_ids = tiny_token_ids()
    forward = model(token_ids, training=True)
    ar_rows = _np(forward["ar_rows"])
    logits, masked = forward["logits"], forward["masked_positions"]
    loss = model.compute_loss(x=token_ids, y_pred=forward, training=True)
    ar_targets = _np(objectives.next_token_targets(token_ids)) & ar_rows[:, None]
    ar = objectives.ar_loss(token_ids, logits, row_mask=ar_rows)
    md = objectives.md_loss(token_ids, logits, masked, forward["mask_fraction"],
                            forward["maskable_positions"], shifted=shifted, row_mask=~ar_rows)
    share = ar_rows.mean()
    z = share * _np(objectives.z_loss(logits, ar_targets)) + (1 - share) * _np(
        objectives.z_loss(logits, masked, shifted))
    np.testing.assert_allclose(_np(loss), share * _np(ar) + (1 - share) * _np(md) + 0.25 * z,
                               rtol=1e-5)
    for tracker, expected in (
        (model.ar_accuracy_tracker, objectives.token_accuracy(logits, token_ids, ar_targets)),
        (model.md_accuracy_tracker,
         objectives.token_accuracy(logits, token_ids, masked, shifted=shifted)),
    ):
        np.testing.assert_allclose(_np(tracker.result()), _np(expected), rtol=1e-5)


def test_tf_data_with_document_ids_trains():
    import tensorflow as tf

    token_ids = tiny_token_ids(batch_size=8, length=16)
    document_ids = np.repeat(np.arange(2), 8)[None].repeat(8, 0).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices(
        {"token_ids": token_ids, "document_ids": document_ids}
    ).batch(4)
    model = DualLM(tiny_backbone(), seed=0)
    model.compile()
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("tied", [False, True])
def test_backbone_contract(tied, tmp_path):
    token_ids = tiny_token_ids(batch_size=4, length=12)
    run_backbone_test(tiny_backbone(tie_word_embeddings=tied), backbone_inputs(token_ids), tmp_path)


def test_saving_round_trip(tmp_path):
    model = DualLM(
        tiny_backbone(tie_word_embeddings=True),
        ar_fraction=0.25,
        md_variant="unshifted",
        ar_loss_weight=2.0,
        elbo_samples=3,
        seed=9,
    )
    model.compile()
    run_task_test(model, tiny_token_ids(batch_size=4, length=16), tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ar_fraction": 1.5}, "ar_fraction"),
        ({"ar_fraction": -0.1}, "ar_fraction"),
        ({"ar_fraction": float("nan")}, "ar_fraction"),
        ({"md_variant": "mdlm"}, "md_variant"),
        ({"ar_loss_weight": -1.0}, "ar_loss_weight"),
        ({"elbo_samples": 0}, "elbo_samples"),
        ({"mask_token_id": VOCAB}, "mask_token_id"),
        ({"pad_token_id": 4}, "distinct"),
    ],
)
def test_bad_model_arguments_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        DualLM(tiny_backbone(), **overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_heads": 3}, "num_heads"),
        ({"hidden_dim": 30, "num_heads": 10}, "even head width"),
        ({"num_layers": 0}, "num_layers"),
        ({"vocabulary_size": 1}, "vocabulary_size"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_backbone_arguments_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_backbone(**overrides)


def test_a_small_vocabulary_cannot_hold_the_special_ids():
    with pytest.raises(ValueError, match="mask_token_id.*vocabulary of 4"):
        DualLM(tiny_backbone(vocabulary_size=4))


def test_misuse_of_compile_fit_and_call_is_explained():
    model = DualLM(tiny_backbone())
    with pytest.raises(ValueError, match="no `loss`"):
        model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="mode"):
        model(tiny_token_ids(), mode="sideways")
    with pytest.raises(ValueError, match="prefix_lengths"):
        model(tiny_token_ids(), mode="prefix")
    with pytest.raises(ValueError, match="shape"):
        model(np.ones((16,), "int32"))
    with pytest.raises(ValueError, match="keys"):
        model({"tokens": tiny_token_ids()})
    model.compile()
    with pytest.raises(ValueError, match="own targets"):
        model.fit(tiny_token_ids(), tiny_token_ids(), batch_size=4, verbose=0)
    with pytest.raises(TypeError, match="DualBackbone"):
        DualLM(keras.Sequential())


def test_evaluate_md_loss_is_the_exact_bound_estimate():
    # A model whose logits do not depend on the input gives every masked token the
    # same cross-entropy log(V), so the bound is exactly log(V) whatever the masks; the
    # estimate (weights n/k) must equal it. The training rule's eps-smoothed 1/t_hat
    # would be off by up to 0.2% here; the k distribution is tested in test_objectives.
    model = DualLM(tiny_backbone(num_layers=1), ar_fraction=0.0, elbo_samples=4, elbo_seed=1)
    for variable in model.backbone.trainable_variables:
        if "final_norm" in variable.path:
            variable.assign(np.zeros(variable.shape))
    model.compile()
    token_ids = tiny_token_ids(batch_size=8, length=16)
    logs = model.evaluate(token_ids, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["md_loss"], np.log(VOCAB), rtol=1e-5)
    np.testing.assert_allclose(logs["ar_loss"], np.log(VOCAB), rtol=1e-5)
