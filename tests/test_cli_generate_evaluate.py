"""`keras-dualobj generate` and `keras-dualobj evaluate` on a saved model."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dualobj import DualLM
from keras_dualobj.cli import main
from keras_dualobj.data import ByteTokenizer
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from test_evaluation import fixed_logits_model
from conftest import tiny_backbone
from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    keras.utils.set_random_seed(2)
    backbone = tiny_backbone(hidden_dim=16, intermediate_dim=32, max_sequence_length=24)
    model = DualLM(backbone)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    keras.utils.set_random_seed(4)
    backbone = tiny_backbone(
        vocabulary_size=272, hidden_dim=16, intermediate_dim=32, max_sequence_length=24,
    )
    model = DualLM(backbone, tokenizer=ByteTokenizer())
    path = tmp_path_factory.mktemp("text") / "text.keras"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def forced_model(tmp_path_factory):
    logits = np.zeros(16)
    logits[9] = 8.0
    path = tmp_path_factory.mktemp("forced") / "forced.keras"
    fixed_logits_model(logits).save(path)
    return path


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_ar_prints_prompt_and_continuation_and_writes_json(saved_model, capsys, tmp_path):
    path, model = saved_model
    output = tmp_path / "generated.json"
    code, out, _ = run_cli(
        capsys, "generate", path, "--prompt-ids", "1 20 21", "--prompt-ids", "1 30",
        "--max-new-tokens", 4, "--no-stop", "--output", output, "--seed", 0,
    )
    assert code == 0
    expected = model.generate([[1, 20, 21], [1, 30]], max_new_tokens=4, stop_token_ids=None, decoder=ARDecoder(seed=0))
    lines = out.strip().splitlines()
    assert lines == [" ".join(map(str, row.tolist())) for row in expected]
    record = json.loads(output.read_text())
    assert record["outputs"] == [row.tolist() for row in expected]
    assert record["decoder"]["config"] == ARDecoder(seed=0).get_config()


def test_generate_md_and_infill(saved_model, capsys):
    path, model = saved_model
    code, out, _ = run_cli(
        capsys, "generate", path, "--prompt-ids", "1 20 21", "--decoder", "md",
        "--max-new-tokens", 4, "--num-steps", 2, "--block-length", 2, "--no-stop", "--seed", 0,
    )
    assert code == 0
    expected = model.generate([[1, 20, 21]], max_new_tokens=4, stop_token_ids=None, decoder=MDDecoder(num_steps=2, block_length=2, seed=0))[0]
    assert out.split() == [str(token) for token in expected]
    code, out, _ = run_cli(
        capsys, "generate", path, "--prompt-ids", "1 20", "--suffix-ids", "40 41",
        "--decoder", "md", "--max-new-tokens", 3,
    )
    tokens = [int(token) for token in out.split()]
    assert code == 0 and tokens[:2] == [1, 20] and tokens[-2:] == [40, 41] and len(tokens) == 7


def test_generate_speculative_prints_the_ar_output(saved_model, capsys):
    path, _ = saved_model
    arguments = ("--prompt-ids", "1 20 21", "--prompt-ids", "1 30", "--max-new-tokens", 8, "--no-stop")
    code, ar, _ = run_cli(capsys, "generate", path, *arguments, "--sampler", "greedy")
    assert code == 0
    code, uncached, _ = run_cli(
        capsys, "generate", path, *arguments, "--sampler", "greedy", "--no-use-cache"
    )
    assert code == 0 and uncached == ar
    code, speculative, _ = run_cli(
        capsys, "generate", path, *arguments, "--decoder", "speculative", "--draft-length", 3
    )
    assert code == 0 and speculative == ar and len(ar.splitlines()) == 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--prompt-ids", "1 x"], "integers"),
        (["--prompt", "hello"], "has none; pass token ids with --prompt-ids"),
        (["--prompt-ids", "1 20", "--max-new-tokens", "40"], "max_sequence_length"),
        (["--prompt-ids", "1 20", "--decoder", "md", "--num-steps", "0"], "--num-steps must be"),
        (["--prompt-ids", "1 20", "--suffix-ids", "5"], "needs --decoder md"),
        (["--prompt-ids", "1 20", "--suffix-ids", "5", "--decoder", "md", "--no-stop",
          "--strip-prompt"], "--no-stop, --strip-prompt do not apply to infilling"),
        (["--prompt-ids", "1 20", "--top-k", "5"], "--sampler top_k"),
        (["--prompt-ids", "1 20", "--draft-length", "3"],
         "--draft-length apply to --decoder speculative only; received --decoder ar"),
        (["--prompt-ids", "1 20", "--decoder", "speculative", "--num-steps", "3"],
         "--num-steps apply to --decoder md only; received --decoder speculative"),
        (["--prompt-ids", "1 20", "--decoder", "md", "--top-k", "3"], "--top-k and --top-p apply"),
        (["--prompt-ids", "1 20", "--decoder", "md", "--threshold", "0.5", "--num-steps", "2"],
         "exclusive"),
        (["--prompt-ids", "1 20", "--decoder", "speculative", "--draft-length", "0"],
         "--draft-length must be"),
    ],
)
def test_generate_reports_bad_input(saved_model, capsys, arguments, message):
    path, _ = saved_model
    code, _, err = run_cli(capsys, "generate", path, *arguments)
    assert code == 2 and message in err


def test_generate_and_evaluate_text_with_the_saved_tokenizer(text_model, capsys, tmp_path):
    path, model = text_model
    output = tmp_path / "text.json"
    code, _, _ = run_cli(
        capsys, "generate", path, "--prompt", "ab", "--prompt", "xyz",
        "--max-new-tokens", 3, "--no-stop", "--output", output, "--seed", 0,
    )
    assert code == 0
    outputs = json.loads(output.read_text())["outputs"]
    assert outputs == model.generate(["ab", "xyz"], max_new_tokens=3, stop_token_ids=None, decoder=ARDecoder(seed=0))
    assert outputs[0].startswith("ab") and outputs[1].startswith("xyz")
    text = tmp_path / "held_out.txt"
    text.write_text("To be, or not to be: that is the question.")
    code, out, _ = run_cli(
        capsys, "evaluate", path, "--text", text, "--sequence-length", 16,
        "--modes", "ar", "md_exact", "--output", output,
    )
    # <s> + 42 bytes = 43 tokens in 3 rows of 16; the first token of a row is unscored.
    results = json.loads(output.read_text())["modes"]
    assert code == 0 and results["ar"]["num_tokens"] == results["md_exact"]["num_tokens"] == 43 - 3
    assert "ar: nll/token =" in out and "exact for MDDecoder(" in out
    # The exact MD likelihood of the same positions, row by row, as the decoder gives it.
    from keras_dualobj.evaluation import token_rows

    ids = np.asarray(model.tokenizer.tokenize(text.read_text()))
    rows, documents = token_rows(np.concatenate([[1], ids]), 16, model.pad_token_id)
    expected = MDDecoder(temperature=0.0).score_rows(model, rows, document_ids=documents)
    assert results["md_exact"]["nll_per_token"] == pytest.approx(
        expected["nll"].sum() / expected["num_tokens"].sum(), rel=1e-5)


def test_generate_reports_a_missing_model(tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", tmp_path / "nope.keras", "--prompt-ids", "1")
    assert code == 2 and "No saved model" in err


def test_evaluate_token_ids_reports_ar_and_md(saved_model, capsys, tmp_path):
    path, model = saved_model
    stream = np.random.default_rng(0).integers(5, 48, 40)
    ids_path = tmp_path / "held_out.npy"
    np.save(ids_path, stream)
    output = tmp_path / "results.json"
    code, out, _ = run_cli(
        capsys, "evaluate", path, "--token-ids", ids_path, "--sequence-length", 16,
        "--num-samples", 2, "--output", output,
    )
    assert code == 0
    results = json.loads(output.read_text())
    assert results["num_rows"] == 3
    # 40 tokens in rows of 16: the first of each row is context only.
    assert results["modes"]["ar"]["num_tokens"] == 40 - 3
    rows = np.zeros((3, 16), "int32") + 3
    rows.reshape(-1)[:40] = stream
    documents = (np.arange(48) >= 40).reshape(3, 16).astype("int32")
    exact = model.score(rows, document_ids=documents)
    assert results["modes"]["ar"]["nll_per_token"] == pytest.approx(
        exact["nll"].sum() / exact["num_tokens"].sum(), rel=1e-5
    )
    assert results["modes"]["md"]["standard_error"] > 0
    assert "ar: nll/token =" in out and "md: nll/token <=" in out


def test_evaluate_multiple_choice_on_a_forced_model(forced_model, capsys, tmp_path):
    examples = [
        {"context": [1, 10], "choices": [[10, 11], [9, 9]], "label": 1},
        {"context": [1], "choices": [[9], [12]], "label": 0},
    ]
    data = tmp_path / "forced.jsonl"
    data.write_text("\n".join(json.dumps(example) for example in examples))
    output = tmp_path / "mc.json"
    code, out, _ = run_cli(
        capsys, "evaluate", forced_model, "--multiple-choice", data, "--num-samples", 2,
        "--length-normalization", "tokens", "--output", output,
    )
    assert code == 0
    results = json.loads(output.read_text())
    assert {mode: r["accuracy"] for mode, r in results["modes"].items()} == {
        "ar": 1.0, "prefix": 1.0, "md": 1.0
    }
    assert "prefix: accuracy 1.0000 (2 examples)" in out


def test_evaluate_reports_bad_input(saved_model, capsys, tmp_path):
    path, _ = saved_model
    text = tmp_path / "held_out.txt"
    text.write_text("some text")
    code, _, err = run_cli(capsys, "evaluate", path, "--text", text)
    assert code == 2 and "tokenizer" in err
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 three")
    code, _, err = run_cli(capsys, "evaluate", path, "--token-ids", ids)
    assert code == 2 and "whitespace-separated integers" in err
    ids.write_text("1 20 21")
    code, _, err = run_cli(capsys, "evaluate", path, "--token-ids", ids, "--modes", "prefix")
    assert code == 2 and "prefix" in err


@pytest.mark.end_to_end("torch")
def test_console_entry_point_runs_as_a_module(saved_model):
    path, _ = saved_model
    environment = one_thread_environment(PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dualobj", "generate", str(path),
         "--prompt-ids", "1 20", "--max-new-tokens", "2", "--no-stop"],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    tokens = completed.stdout.split()
    assert tokens[:2] == ["1", "20"] and len(tokens) == 4
