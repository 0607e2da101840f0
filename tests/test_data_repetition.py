"""Repetition plan and tf.data pipelines: same rows every epoch, new order, resumable."""

import numpy as np
import pytest

from keras_dualobj.data import (
    make_evaluation_dataset,
    make_training_dataset,
    pack_documents,
    plan_repetition,
    prepare_data,
    repetitions_to_fit,
    training_row_order,
)

# NumPy, files and text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

SEQUENCE_LENGTH = 32
BATCH_SIZE = 8


@pytest.fixture(scope="module")
def data():
    """The built-in corpus, byte tokens, ~12 steps per epoch, 4 epochs."""
    return prepare_data(
        "builtin",
        tokenizer="byte",
        sequence_length=SEQUENCE_LENGTH,
        batch_size=BATCH_SIZE,
        unique_tokens=100 * SEQUENCE_LENGTH,
        repetitions=4,
        validation_fraction=0.1,
        seed=7,
        verbose=False,
    )


def _batches(dataset):
    return [
        {key: value for key, value in batch.items()}
        for batch in dataset.as_numpy_iterator()
    ]


def _row_keys(token_ids, document_ids):
    return [t.tobytes() + d.tobytes() for t, d in zip(token_ids, document_ids)]


def _epochs(data, plan, seed, repetitions):
    rows = data.train_rows
    if repetitions != plan.repetitions:
        plan = plan_repetition(
            rows, batch_size=plan.batch_size, repetitions=repetitions,
            unique_tokens=plan.unique_tokens,
        )
    batches = _batches(make_training_dataset(rows, plan, seed=seed))
    assert len(batches) == plan.total_steps == repetitions * plan.steps_per_epoch
    epochs = []
    for epoch in range(repetitions):
        chunk = batches[epoch * plan.steps_per_epoch : (epoch + 1) * plan.steps_per_epoch]
        token_ids = np.concatenate([b["token_ids"] for b in chunk])
        document_ids = np.concatenate([b["document_ids"] for b in chunk])
        epochs.append(_row_keys(token_ids, document_ids))
    return plan, epochs


@pytest.mark.parametrize("repetitions", [1, 4])
def test_every_epoch_has_the_same_rows_in_a_new_order(data, repetitions):
    plan, epochs = _epochs(data, data.plan, seed=7, repetitions=repetitions)
    first_rows = data.train_rows
    expected = sorted(
        _row_keys(
            first_rows.token_ids[: plan.rows_per_epoch],
            first_rows.document_ids[: plan.rows_per_epoch],
        )
    )
    assert sum(len(e) for e in epochs) == repetitions * plan.rows_per_epoch
    stored_order = _row_keys(
        first_rows.token_ids[: plan.rows_per_epoch],
        first_rows.document_ids[: plan.rows_per_epoch],
    )
    for epoch in epochs:
        assert sorted(epoch) == expected  # the same multiset: the first U tokens
        assert epoch != stored_order  # shuffled
    orders = {tuple(epoch) for epoch in epochs}
    assert len(orders) == repetitions  # reshuffled every epoch


def test_no_validation_row_appears_in_training(data):
    trained = set()
    for batch in data.train_dataset.as_numpy_iterator():
        trained.update(t.tobytes() for t in batch["token_ids"])
    validation = [
        t.tobytes()
        for batch in data.validation_dataset.as_numpy_iterator()
        for t, d in zip(batch["token_ids"], batch["document_ids"])
        if d[0] >= 0  # not the padding rows that fill the last batch
    ]
    assert len(validation) == data.validation_rows.num_rows > 0
    assert trained.isdisjoint(validation)
    # Held out by document: validation rows decode to text of the corpus tail.
    first_validation_text = data.tokenizer.detokenize(
        data.validation_rows.token_ids[0].tolist()
    )
    train_text = data.tokenizer.detokenize(data.train_rows.token_ids.reshape(-1).tolist())
    assert first_validation_text not in train_text


def test_stream_is_deterministic_and_seed_dependent(data):
    plan, rows = data.plan, data.train_rows
    first = _batches(make_training_dataset(rows, plan, seed=7))
    again = _batches(make_training_dataset(rows, plan, seed=7))
    other = _batches(make_training_dataset(rows, plan, seed=8))
    assert all(np.array_equal(a["token_ids"], b["token_ids"]) for a, b in zip(first, again))
    assert not all(np.array_equal(a["token_ids"], b["token_ids"]) for a, b in zip(first, other))
    order = training_row_order(plan, seed=7).reshape(-1, plan.batch_size)
    for batch, rows_of_step in zip(first, order):
        np.testing.assert_array_equal(batch["token_ids"], rows.token_ids[rows_of_step])
        np.testing.assert_array_equal(batch["document_ids"], rows.document_ids[rows_of_step])


@pytest.mark.parametrize("start_step", [1, 12, 17, 47])
def test_resume_at_a_step_gives_the_rest_of_the_stream(data, start_step):
    plan, rows = data.plan, data.train_rows
    assert plan.steps_per_epoch == 12
    full = _batches(make_training_dataset(rows, plan, seed=7))
    resumed_dataset = make_training_dataset(rows, plan, seed=7, start_step=start_step)
    assert int(resumed_dataset.cardinality()) == plan.total_steps - start_step
    resumed = _batches(resumed_dataset)
    assert len(resumed) == plan.total_steps - start_step
    for a, b in zip(full[start_step:], resumed):
        np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
        np.testing.assert_array_equal(a["document_ids"], b["document_ids"])


def test_batches_are_what_fit_consumes(data):
    spec = data.train_dataset.element_spec
    assert sorted(spec) == ["document_ids", "token_ids"]
    for value in spec.values():
        assert value.shape.as_list() == [BATCH_SIZE, SEQUENCE_LENGTH]
        assert value.dtype.name == "int32"
    first = next(iter(data.train_dataset))["token_ids"].numpy()
    assert (first[:, 0] >= 0).all() and first.max() < data.tokenizer.vocabulary_size()
    assert data.fit_arguments()["steps_per_epoch"] == data.plan.steps_per_epoch
    assert data.fit_arguments()["epochs"] == 4
    eval_batches = list(data.validation_dataset.as_numpy_iterator())
    assert {b["token_ids"].shape[0] for b in eval_batches} == {BATCH_SIZE}  # one shape
    real = np.concatenate([b["token_ids"][b["document_ids"][:, 0] >= 0] for b in eval_batches])
    np.testing.assert_array_equal(real, data.validation_rows.token_ids)  # nothing dropped


# --- the plan ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rows():
    # 10 documents of 99 tokens + <s> = 1000 tokens = 100 rows of 10.
    return pack_documents([np.arange(16, 115)] * 10, 10)


def test_plan_arithmetic(rows):
    plan = plan_repetition(rows, batch_size=4, unique_tokens=400, repetitions=8)
    assert (plan.rows_per_epoch, plan.steps_per_epoch, plan.total_steps) == (40, 10, 80)
    assert (plan.unique_tokens, plan.total_tokens) == (400, 3200)
    budget = plan_repetition(rows, batch_size=4, token_budget=3200, repetitions=8)
    assert budget == plan
    fraction = plan_repetition(rows, batch_size=4, unique_fraction=0.4, repetitions=8)
    assert fraction.unique_tokens == 400
    whole = plan_repetition(rows, batch_size=4)
    assert whole.rows_per_epoch == 100 and whole.repetitions == 1
    rounded = plan_repetition(rows, batch_size=4, unique_tokens=455)
    assert rounded.unique_tokens == 440 and rounded.requested_unique_tokens == 455
    assert "requested 455, rounded down" in rounded.describe()
    assert plan.fit_arguments(20) == {"epochs": 8, "initial_epoch": 2, "steps_per_epoch": 10}
    with pytest.raises(ValueError, match="not at an epoch boundary"):
        plan.fit_arguments(15)


def test_repetitions_to_fit_is_the_smallest_r_that_fits():
    for budget in (1, 999, 1000, 1001, 2000, 2001, 8000, 524_288):
        for asked in (1, 3, 8):
            for available in (1, 7, 1000):
                fitted = repetitions_to_fit(budget, asked, available)
                brute = next(
                    r for r in range(asked, asked + budget + 2) if budget // r <= available
                )
                assert fitted == brute, (budget, asked, available)
    with pytest.raises(ValueError, match="available_tokens=0"):
        repetitions_to_fit(10, 1, 0)


def test_fit_repetitions_raises_r_only_when_the_budget_does_not_fit(rows):
    # 1,000 usable tokens; C = 8,000 at R = 4 needs 2,000 unique tokens.
    fitted = plan_repetition(
        rows, batch_size=4, token_budget=8000, repetitions=4, fit_repetitions=True
    )
    assert (fitted.repetitions, fitted.requested_repetitions) == (8, 4)
    assert (fitted.unique_tokens, fitted.total_tokens) == (1000, 8000)
    assert "R = 8 times (R raised from 4" in fitted.describe()
    fits = plan_repetition(
        rows, batch_size=4, token_budget=800, repetitions=2, fit_repetitions=True
    )
    assert fits == plan_repetition(rows, batch_size=4, token_budget=800, repetitions=2)
    assert fits.requested_repetitions is None and "raised" not in fits.describe()


def test_plan_rejects_bad_input(rows):
    with pytest.raises(ValueError, match=r"unique_tokens=1,001.*holds 1,000 tokens"):
        plan_repetition(rows, batch_size=4, unique_tokens=1001)
    with pytest.raises(
        ValueError, match=r"token_budget=8,000 / repetitions=4 = 2,000.*1,000 tokens"
    ):
        plan_repetition(rows, batch_size=4, token_budget=8000, repetitions=4)
    with pytest.raises(ValueError, match=r"repetitions.*>= 1.*Received: 0"):
        plan_repetition(rows, batch_size=4, repetitions=0)
    with pytest.raises(TypeError, match="repetitions.*2.5"):
        plan_repetition(rows, batch_size=4, repetitions=2.5)
    with pytest.raises(ValueError, match="fewer than one batch"):
        plan_repetition(rows, batch_size=4, unique_tokens=30)
    with pytest.raises(ValueError, match="at most one of"):
        plan_repetition(rows, batch_size=4, unique_tokens=100, token_budget=100)
    with pytest.raises(ValueError, match=r"unique_fraction.*\(0, 1\].*1.5"):
        plan_repetition(rows, batch_size=4, unique_fraction=1.5)
    plan = plan_repetition(rows, batch_size=4)
    with pytest.raises(ValueError, match=r"start_step.*\[0, 25\].*26"):
        make_training_dataset(rows, plan, seed=0, start_step=26)
    with pytest.raises(TypeError, match="seed"):
        make_training_dataset(rows, plan, seed="0")
    with pytest.raises(ValueError, match="batch_size"):
        make_evaluation_dataset(rows, 0)


def test_prepare_data_reports_small_corpora_clearly():
    with pytest.raises(ValueError, match=r"Training split: The corpus is shorter than one row"):
        prepare_data(
            "iterable", texts=["tiny", "text"], tokenizer="byte",
            sequence_length=512, validation_fraction=0, verbose=False,
        )
    with pytest.raises(ValueError, match=r"sequence_length.*>= 2.*Received: 1"):
        prepare_data("builtin", tokenizer="byte", sequence_length=1, verbose=False)
    with pytest.raises(ValueError, match=r"unique_tokens=10,000,000.*training split holds"):
        prepare_data(
            "builtin", tokenizer="byte", unique_tokens=10_000_000, verbose=False
        )
    with pytest.raises(ValueError, match="`tokenizer` must be one of"):
        prepare_data("builtin", tokenizer="sentencepiece", verbose=False)
