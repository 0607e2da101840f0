"""The scripts in examples/ run end to end (tiny settings) on the current backend."""

import importlib.util
import math

import pytest

from conftest import REPO_ROOT


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.end_to_end("tensorflow")
def test_train_on_your_text_trains_evaluates_and_generates(tmp_path, prose_file, capsys):
    text = prose_file.read_text()[:30_000]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    example = load_example("train_on_your_text")
    held_out = example.main([
        "--text", str(corpus), "--preset", "tiny", "--vocabulary-size", "320",
        "--sequence-length", "32", "--batch-size", "8", "--token-budget", "16384",
        "--repetitions", "2", "--prompt", "The for", "--max-new-tokens", "16",
    ])
    # Trained below the uniform-guess loss ln(V) on held-out text, both objectives.
    assert held_out["ar_loss"] < math.log(320)
    assert held_out["md_loss"] < math.log(320)
    printed = capsys.readouterr().out
    assert "AR sample: 'The for" in printed
    assert "MD sample: 'The for" in printed
