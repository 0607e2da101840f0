"""The pipelines and tokenizers with the real model, on the current backend."""

import keras
import numpy as np
import pytest

from keras_dualobj import DualLM
from keras_dualobj.data import ByteTokenizer, prepare_data, train_bpe_tokenizer
from keras_dualobj.data import make_evaluation_dataset, pack_documents

from conftest import tiny_backbone


def _tiny_backbone(vocabulary_size):
    return tiny_backbone(
        vocabulary_size=vocabulary_size, num_layers=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
    )


class _BatchRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.train_batches = 0
        self.epochs = []

    def on_train_batch_end(self, batch, logs=None):
        self.train_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


def test_fit_consumes_the_pipeline_epoch_by_epoch():
    repetitions = 2
    data = prepare_data(
        "builtin",
        tokenizer="byte",
        sequence_length=32,
        batch_size=8,
        unique_tokens=4 * 8 * 32,
        repetitions=repetitions,
        # A couple of validation batches: enough to exercise validation_data.
        validation_fraction=0.001,
        seed=3,
        verbose=False,
    )
    model = DualLM(_tiny_backbone(data.tokenizer.vocabulary_size()),
                   tokenizer=data.tokenizer, ar_fraction=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    recorder = _BatchRecorder()
    history = model.fit(**data.fit_arguments(), callbacks=[recorder], verbose=0)
    assert recorder.train_batches == data.plan.total_steps == 4 * repetitions
    assert len(history.history["loss"]) == repetitions
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["val_ar_loss"]).all()
    assert np.isfinite(history.history["val_md_loss"]).all()
    results = model.evaluate(data.validation_dataset, return_dict=True, verbose=0)
    assert np.isfinite(results["ar_loss"])


def test_evaluation_batches_padded_to_one_shape_score_every_row_once():
    # 10 held-out rows in batches of 4: the last batch is 2 rows and 2 padding rows.
    # The face losses are each face's NLL summed over the split's scored tokens
    # over their count (as `score` gives them), and `loss` their objective.
    rng = np.random.default_rng(0)
    documents = [rng.integers(5, 48, rng.integers(6, 30)).tolist() for _ in range(12)]
    rows = pack_documents(documents, sequence_length=16)
    model = DualLM(_tiny_backbone(64), ar_fraction=0.25, elbo_samples=2, elbo_seed=3, seed=0)
    model.compile()
    dataset = make_evaluation_dataset(rows, 4)
    assert [int(b["token_ids"].shape[0]) for b in dataset] == [4] * -(-rows.num_rows // 4)
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    one_batch = model.evaluate(make_evaluation_dataset(rows, rows.num_rows), return_dict=True,
                               verbose=0)
    ar = model.score(rows.token_ids, "ar", document_ids=rows.document_ids)
    md = model.score(rows.token_ids, "md", document_ids=rows.document_ids, num_samples=2, seed=3)
    assert logs["ar_loss"] == pytest.approx(ar["nll"].sum() / ar["num_tokens"].sum(), rel=1e-5)
    assert logs["md_loss"] == pytest.approx(md["nll"].sum() / md["num_tokens"].sum(), rel=1e-5)
    for name in ("loss", "ar_loss", "md_loss", "ar_accuracy", "md_accuracy"):
        assert logs[name] == pytest.approx(one_batch[name], rel=1e-5), name
    assert logs["loss"] == pytest.approx(0.25 * logs["ar_loss"] + 0.75 * logs["md_loss"], rel=1e-6)
    as_list = model.evaluate(dataset, verbose=0)
    assert as_list[0] == pytest.approx(logs["loss"], rel=1e-6)


def test_resumed_fit_runs_the_remaining_epochs():
    data = prepare_data(
        "builtin", tokenizer="byte", sequence_length=32, batch_size=8,
        unique_tokens=2 * 8 * 32, repetitions=3, seed=3, start_step=2,
        validation_fraction=0, verbose=False,
    )
    model = DualLM(_tiny_backbone(272), seed=0)
    model.compile()
    recorder = _BatchRecorder()
    history = model.fit(**data.fit_arguments(), callbacks=[recorder], verbose=0)
    assert recorder.train_batches == 4  # epochs 1 and 2 of 0..2
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("kind", ["bpe", "byte"])
def test_tokenizer_is_saved_with_dual_lm(kind, tmp_path):
    if kind == "bpe":
        tokenizer = train_bpe_tokenizer(
            ["the quick brown fox jumps over the lazy dog"] * 30, vocabulary_size=300
        )
    else:
        tokenizer = ByteTokenizer()
    model = DualLM(_tiny_backbone(tokenizer.vocabulary_size()), tokenizer=tokenizer)
    assert (model.bos_token_id, model.eos_token_id, model.pad_token_id,
            model.mask_token_id) == (1, 2, 3, 4)
    token_ids = np.array([[1] + tokenizer.tokenize("the lazy fox").tolist()], "int32")
    expected = keras.ops.convert_to_numpy(model(token_ids))
    path = tmp_path / "model.keras"
    model.save(path)

    restored = keras.saving.load_model(path)
    assert type(restored.tokenizer) is type(tokenizer)
    for name in ("unk_token_id", "bos_token_id", "eos_token_id", "pad_token_id",
                 "mask_token_id"):
        assert getattr(restored.tokenizer, name) == getattr(tokenizer, name)
    assert restored.mask_token_id == 4
    text = "the quick dog"
    assert restored.tokenizer.tokenize(text).tolist() == tokenizer.tokenize(text).tolist()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(token_ids)), expected, atol=1e-5
    )
