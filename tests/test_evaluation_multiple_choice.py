"""Multiple choice: a hand-made file whose answers are forced by the model's construction."""

import json

import numpy as np
import pytest

from keras_dualobj.evaluation import evaluate_multiple_choice
from keras_dualobj.evaluation import load_multiple_choice
from keras_dualobj.evaluation.multiple_choice import example_batch
from test_evaluation import fixed_logits_model
from test_evaluation import log_softmax



@pytest.fixture(scope="module")
def model():
    """Predicts token 9 everywhere; token 10 costs ~8 nats, token 11 ~12, others ~8."""
    logits = np.zeros(16)
    logits[9], logits[11] = 8.0, -4.0
    return fixed_logits_model(logits)


def write_jsonl(path, examples):
    path.write_text("\n".join(json.dumps(example) for example in examples) + "\n\n")
    return path


def test_the_forced_answer_wins_in_every_mode(model, tmp_path):
    examples = [
        {"context": [1, 10, 11], "choices": [[10, 10], [9, 9], [11, 12]], "label": 1},
        {"context": [1, 12], "choices": [[9, 9, 9], [12, 11, 10]], "label": 0},
        {"context": [1], "choices": [[11], [10], [12], [9]], "label": 3},
    ]
    path = write_jsonl(tmp_path / "forced.jsonl", examples)
    result = model.evaluate_multiple_choice(path, modes=("ar", "prefix", "md"), num_samples=4)
    assert result["num_examples"] == 3 and result["labels"] == [1, 0, 3]
    for mode in ("ar", "prefix", "md"):
        assert result["modes"][mode]["predictions"] == [1, 0, 3]
        assert result["modes"][mode]["accuracy"] == 1.0


def test_a_wrong_label_lowers_accuracy(model):
    # The model prefers 9 to 10 by log-softmax; each choice's score is that log-prob.
    right = {"context": [1, 10], "choices": [[9], [10]], "label": 0}
    wrong = {**right, "label": 1}
    logits = np.zeros(16)
    logits[9], logits[11] = 8.0, -4.0
    log_probs = log_softmax(logits)
    both_right = model.evaluate_multiple_choice([right, right], modes=("ar", "prefix"))
    one_wrong = model.evaluate_multiple_choice([right, wrong], modes=("ar", "prefix"))
    for mode in ("ar", "prefix"):
        for result in (both_right, one_wrong):
            assert result["modes"][mode]["predictions"] == [0, 0]
            np.testing.assert_allclose(
                result["modes"][mode]["scores"],
                [[log_probs[9], log_probs[10]]] * 2,
                rtol=1e-5,
                atol=1e-5,  # float32 logits: log-probs near 0 carry ~5e-7 absolute error
            )
        assert both_right["modes"][mode]["accuracy"] == 1.0
        assert one_wrong["modes"][mode]["accuracy"] == 0.5
    # A model that prefers 10 instead turns the same labels around.
    logits[10] = 12.0
    flipped = fixed_logits_model(logits).evaluate_multiple_choice([right, wrong])
    assert flipped["modes"]["ar"]["predictions"] == [1, 1]
    assert flipped["modes"]["ar"]["accuracy"] == 0.5
    assert fixed_logits_model(logits).evaluate_multiple_choice([right, right])["modes"]["ar"][
        "accuracy"
    ] == 0.0


def test_length_normalization_changes_the_forced_answer(model):
    # [10, 10] costs ~16 nats in all, ~8 per token; [11] ~12 in all and per token.
    # Equal costs within a choice make even the 2-sample MD estimate exact.
    examples = [{"context": [1, 12], "choices": [[10, 10], [11]], "label": 0}]
    raw = model.evaluate_multiple_choice(examples, modes=("ar", "md"), num_samples=2)
    per_token = model.evaluate_multiple_choice(
        examples, modes=("ar", "md"), length_normalization="tokens", num_samples=2
    )
    for mode in ("ar", "md"):
        assert raw["modes"][mode]["predictions"] == [1]
        assert per_token["modes"][mode]["predictions"] == [0]


def test_string_examples_use_the_tokenizer_and_bytes_normalization():
    def tokenize(text):
        return [9 if character == "a" else 10 for character in text]

    def score_fn(token_ids, mode, target_mask, prefix_lengths, document_ids, batch_index):
        nll = np.where(token_ids == 9, 0.1, 5.0)
        return {
            "nll": (nll * target_mask).sum(1),
            "standard_error": np.zeros(len(token_ids)),
            "num_tokens": target_mask.sum(1),
        }

    examples = [{"context": "q", "choices": ["ab", "b"], "label": 0}]
    batch = example_batch(examples[0], tokenize, bos_token_id=1, pad_token_id=3)
    assert batch["token_ids"].tolist() == [[1, 10, 9, 10], [1, 10, 10, 3]]
    assert batch["document_ids"][1].tolist() == [0, 0, 0, 1]
    raw = evaluate_multiple_choice(score_fn, examples, tokenize=tokenize)
    normalized = evaluate_multiple_choice(
        score_fn, examples, tokenize=tokenize, length_normalization="bytes"
    )
    assert raw["modes"]["ar"]["predictions"] == [1]
    assert normalized["modes"]["ar"]["predictions"] == [0]


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "line, message",
    [
        ('{"context": [1], "choices": [[5], [6]]}', r"bad.jsonl:2: missing key\(s\) \['label'\]"),
        ('{"context": [1], "choices": [[5], [6]], "label": 2}', "label=2"),
        ('{"context": [1], "choices": [[5]], "label": 0}', "at least 2"),
        ('{"context": "", "choices": [[5], [6]], "label": 0}', "`context`"),
        ('{"context": [1], "choices": [[5], []], "label": 0}', "choice 1"),
        ('{"context": [1], "choices": [[5], [6]], "label": 0', "not valid JSON"),
    ],
)
def test_malformed_files_name_the_line_and_the_problem(tmp_path, line, message):
    good = '{"context": [1], "choices": [[5], [6]], "label": 0}'
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_multiple_choice(path)


def test_bad_arguments_raise_clear_errors(model, tmp_path):
    examples = [{"context": [1], "choices": [[9], [10]], "label": 0}]
    with pytest.raises(ValueError, match="'gen'"):
        model.evaluate_multiple_choice(examples, modes=("gen",))
    with pytest.raises(ValueError, match="'chars'"):
        model.evaluate_multiple_choice(examples, length_normalization="chars")
    with pytest.raises(ValueError, match='"bytes" needs string choices'):
        model.evaluate_multiple_choice(examples, length_normalization="bytes")
    with pytest.raises(ValueError, match="does not exist"):
        model.evaluate_multiple_choice(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="holds no examples"):
        model.evaluate_multiple_choice(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(ValueError, match="no tokenizer"):
        model.evaluate_multiple_choice([{"context": "q", "choices": ["a", "b"], "label": 0}])
