"""lm-evaluation-harness integration, offline: a task YAML over a local JSON Lines file.

The harness reads the file through `datasets` (HF_DATASETS_OFFLINE=1). With a model
that predicts byte "a" everywhere, the answers are forced in every mode; with a random
tiny model, the harness's loglikelihoods equal `DualLM.score()` request by request.
"""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.data import ByteTokenizer
from test_evaluation import fixed_logits_model
from test_evaluation import log_softmax

os.environ["HF_DATASETS_OFFLINE"] = "1"

from lm_eval.api.instance import Instance  # noqa: E402  (the `eval` extra, in `test`)

from keras_dualobj.lm_eval.harness import run_harness  # noqa: E402
from keras_dualobj.lm_eval.model import KerasDualLM  # noqa: E402

from conftest import tiny_backbone

VOCABULARY_SIZE = 272  # ByteTokenizer: 16 specials + 256 bytes
A = ord("a") + 16
MODES = ("ar", "prefix", "md", "pll")
EXAMPLES = [
    {"context": "Say", "choices": ["ab", "aa", "ba"], "label": 1},
    {"context": "Then", "choices": ["aaa", "bcd"], "label": 0},
    {"context": "Last one", "choices": ["b", "c", "a"], "label": 2},
]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    data = folder / "forced.jsonl"
    data.write_text("".join(json.dumps(example) + "\n" for example in EXAMPLES))
    (folder / "forced.yaml").write_text(
        f"""task: dualobj_forced
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
    )
    return folder


@pytest.fixture(scope="module")
def forced_model():
    """Predicts byte "a" everywhere, whatever the attention or the masks."""
    logits = np.zeros(VOCABULARY_SIZE)
    logits[A] = 8.0
    return DualLM(fixed_logits_model(logits).backbone, tokenizer=ByteTokenizer())


@pytest.fixture(scope="module")
def random_model():
    keras.utils.set_random_seed(5)
    backbone = tiny_backbone(
        vocabulary_size=VOCABULARY_SIZE, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
    )
    return DualLM(backbone, tokenizer=ByteTokenizer())


def test_the_harness_finds_the_forced_answers(forced_model, task_dir):
    # Modes "ar" and "pll" run through the CLI below.
    results = run_harness(forced_model, ["dualobj_forced"], ("prefix", "md"),
                          include_path=task_dir, num_samples=32, batch_size=8)
    # 32 samples: the bound's estimate is within a few nats of its (context-free) exact
    # value, well inside the margins between the choices.
    for mode in ("prefix", "md"):
        assert results[mode]["results"]["dualobj_forced"]["acc,none"] == 1.0, mode


def test_harness_loglikelihoods_equal_dual_lm_score(random_model, task_dir):
    results = run_harness(random_model, ["dualobj_forced"], ("ar", "prefix", "md", "pll"),
                          include_path=task_dir, num_samples=3, seed=2, batch_size=8,
                          log_samples=True)
    tokenize = random_model.tokenizer.tokenize
    for mode, result in results.items():
        pairs, responses = [], []
        for sample in result["samples"]["dualobj_forced"]:
            pairs += [tuple(arguments) for arguments in sample["arguments"]]
            responses += [response[0][0] for response in sample["resps"]]
        assert len(pairs) == 8
        # All requests as one right-padded batch (scores do not depend on the batch),
        # of the adapter's shape (8 rows, a multiple of 16), so no new compilation.
        rows = [([1] + list(tokenize(context)), list(tokenize(more))) for context, more in pairs]
        length = -(-max(len(context) + len(more) for context, more in rows) // 16) * 16
        token_ids = np.full((len(rows), length), 3, "int32")
        document_ids = np.ones_like(token_ids)
        targets = np.zeros(token_ids.shape, bool)
        for row, (context, more) in enumerate(rows):
            end = len(context) + len(more)
            token_ids[row, :end] = context + more
            document_ids[row, :end] = 0
            targets[row, len(context) : end] = True
        options = {"target_mask": targets, "document_ids": document_ids}
        if mode == "prefix":
            options["prefix_lengths"] = [len(context) for context, _ in rows]
        if mode == "md":
            options.update(num_samples=3, seed=2)
        expected = -random_model.score(token_ids, mode, **options)["nll"]
        np.testing.assert_allclose(responses, expected, rtol=1e-4, atol=1e-4, err_msg=mode)


def test_rolling_loglikelihood_is_the_sum_of_per_token_ar_log_probabilities(random_model):
    text = "The harness cuts a long document into windows of its context, scoring each token once."
    harness_model = KerasDualLM(model=random_model, mode="ar", batch_size=4)
    request = Instance("loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
    (rolling,) = harness_model.loglikelihood_rolling([request])
    tokens = [random_model.bos_token_id] + np.asarray(
        random_model.tokenizer.tokenize(text)
    ).tolist()
    length = random_model.backbone.max_sequence_length
    assert len(tokens) > 2 * length
    # Each token after `<s>` is predicted once: the first window is the first `length`
    # tokens; each later one is the `length` tokens ending at the end of its next
    # chunk of at most `length - 1` new tokens, which alone are scored.
    windows = [(0, min(length, len(tokens)))]
    while windows[-1][1] < len(tokens):
        end = min(windows[-1][1] + length - 1, len(tokens))
        windows.append((end - length, end))
    expected, scored_total, previous_end = 0.0, 0, 1
    for start, end in windows:
        row = np.array([tokens[start:end]], "int32")
        logits = ops.convert_to_numpy(random_model.logits(row, np.zeros_like(row), np.zeros(1)))
        log_probs = log_softmax(logits)[0, :-1][np.arange(end - start - 1), row[0, 1:]]
        scored = end - previous_end
        expected += log_probs[-scored:].sum()
        scored_total, previous_end = scored_total + scored, end
    assert scored_total == len(tokens) - 1
    assert rolling == pytest.approx(expected, rel=1e-4)
    md = KerasDualLM(model=random_model, mode="md", mc_samples=2, batch_size=4)
    first, again = (md.loglikelihood_rolling([request])[0] for _ in range(2))
    assert np.isfinite(first) and first == again


@pytest.mark.parametrize("mode", ["ar", "md"])
def test_generate_until_continues_with_the_forced_byte_and_stops(forced_model, mode):
    harness_model = KerasDualLM(model=forced_model, mode=mode)
    requests = [
        Instance("generate_until", doc={}, arguments=("Go", options), idx=0)
        for options in ({"until": ["\n"], "max_gen_toks": 3}, {"until": ["ab", "aaaa"]})
    ]
    # The second stops at "aaaa" (its first stop string found), keeping what precedes.
    assert harness_model.generate_until(requests) == ["aaa", ""]


def test_bad_harness_arguments_raise_clear_errors(random_model):
    with pytest.raises(ValueError, match="'nope'"):
        KerasDualLM(model=random_model, mode="nope")
    with pytest.raises(ValueError, match="mc_samples"):
        KerasDualLM(model=random_model, mc_samples=0)
    with pytest.raises(ValueError, match="exactly one"):
        KerasDualLM()
    with pytest.raises(ValueError, match="not a log-likelihood"):
        request = Instance("loglikelihood_rolling", doc={}, arguments=("abc",), idx=0)
        KerasDualLM(model=random_model, mode="pll").loglikelihood_rolling([request])
    with pytest.raises(ValueError, match="continuation has 40 tokens"):
        KerasDualLM(model=random_model).score_pairs([("a", "b" * 40)])
    with pytest.raises(ValueError, match="modes"):
        run_harness(random_model, ["dualobj_forced"], ("elbo",))


def test_cli_evaluate_tasks_runs_the_harness_per_mode(forced_model, task_dir, tmp_path, capsys):
    from keras_dualobj.cli import main

    path = tmp_path / "forced.keras"
    forced_model.save(path)
    output = tmp_path / "harness.json"
    code = main(
        ["evaluate", str(path), "--tasks", "dualobj_forced", "--include-path", str(task_dir),
         "--modes", "ar", "pll", "--limit", "2", "--output", str(output)]
    )
    out = capsys.readouterr().out
    assert code == 0
    results = json.loads(output.read_text())["harness"]
    assert {mode: results[mode]["dualobj_forced"]["acc,none"] for mode in results} == {
        "ar": 1.0, "pll": 1.0
    }
    assert "pll dualobj_forced: acc,none 1.0000" in out
    assert main(["evaluate", str(path), "--tasks", "x", "--include-path", str(tmp_path / "no")]) == 2
