"""The `keras-dualobj train` command: help, a tiny end-to-end run, resume, errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from keras_dualobj.cli import build_parser
from keras_dualobj.cli import main
from keras_dualobj.cli.train import resolve_config

from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
# The built-in corpus is always there and offline; 8,192 tokens = 8 steps of 16 x 64.
TINY_BASE = [
    "train", "--preset", "tiny", "--source", "builtin",
    "--eval-batches", "2", "--sample-length", "8", "--prompt-length", "8",
]
TINY_RUN = TINY_BASE + ["--token-budget", "8192", "--log-every", "4"]


@pytest.mark.backend_independent
def test_help_lists_the_options_the_issue_asks_for():
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dualobj", "train", "--help"],
        cwd=REPO_ROOT,
        env=one_thread_environment(PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    for option in (
        "--source", "--tokenizer", "--preset", "--ar-fraction", "--repetitions",
        "--unique-tokens", "--token-budget", "--sequence-length", "--batch-size",
        "--learning-rate", "--seed", "--output-dir", "--resume", "--overwrite",
        "--keep-checkpoints",
    ):
        assert option in completed.stdout, option
    assert "train" in build_parser().format_help()


@pytest.mark.end_to_end("torch")
def test_tiny_end_to_end_run_prints_summary_and_writes_outputs(tmp_path, capsys):
    output_dir = tmp_path / "run"
    assert main(TINY_RUN + ["--output-dir", str(output_dir)]) == 0
    printed = capsys.readouterr().out
    assert "corpus source: builtin" in printed
    assert "step 4/8" in printed and "tok/s" in printed
    assert "held-out at step 8 (first 2 batches): AR loss" in printed  # --eval-batches 2
    assert "=== Summary ===" in printed
    assert "held-out    AR loss" in printed and "MD loss (ELBO bound)" in printed
    assert "sample AR" in printed and "sample MD" in printed
    for name in ("run.json", "model.keras", "summary.json", "tokenizer",
                 "logs/training_log.csv", "checkpoints/step_00000008"):
        assert (output_dir / name).exists(), name
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["total_steps"] == 8 and summary["preset"] == "tiny"
    # Learned something in 8 steps: below the uniform guess over 272 byte ids.
    assert 0 < summary["held_out"]["ar_loss"] < math.log(272)
    assert 0 < summary["held_out"]["md_loss"] < math.log(272)
    assert all(len(sample["completion"]) > 0 for sample in summary["samples"].values())
    model = keras.saving.load_model(output_dir / "model.keras")
    assert model.tokenizer.vocabulary_size() == model.backbone.vocabulary_size == 272

    # A different run into the same folder is refused; --resume may not change it.
    assert main(TINY_RUN + ["--output-dir", str(output_dir), "--seed", "1"]) == 2
    error = capsys.readouterr().err
    assert "already holds a training run" in error and "--resume" in error
    assert main(TINY_RUN + ["--output-dir", str(output_dir), "--seed", "1", "--resume"]) == 2
    assert "--seed 1 (the run has 0)" in capsys.readouterr().err
    # --resume of the finished run only evaluates and summarises.
    assert main(["train", "--output-dir", str(output_dir), "--resume", "--eval-batches", "1",
                 "--sample-length", "4"]) == 0
    printed = capsys.readouterr().out
    assert "Resuming from" in printed and "step_00000008" in printed
    assert "step 4/8" not in printed
    # --overwrite starts again.
    assert main(TINY_RUN + ["--output-dir", str(output_dir), "--seed", "1", "--overwrite"]) == 0
    assert json.loads((output_dir / "run.json").read_text())["config"]["seed"] == 1


@pytest.mark.end_to_end("torch")
def test_diverging_run_stops_with_a_message_naming_step_and_checkpoint(tmp_path, capsys):
    code = main(TINY_RUN + ["--output-dir", str(tmp_path), "--optimizer", "adamw",
                            "--learning-rate", "1e9", "--warmup-fraction", "0"])
    assert code == 1
    error = capsys.readouterr().err
    assert "Training stopped: the loss became" in error and "at step" in error
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--ar-fraction", "1.5"], "received --ar-fraction 1.5"),
        (["--preset", "huge"], "Unknown preset 'huge'"),
        (["--token-budget", "100000000"], "the training split holds"),
        (["--optimizer", "sgd"], "optimizer"),
        (["--log-every", "4", "--eval-every", "6"], "--eval-every must be a multiple of --log-every"),
    ],
)
def test_bad_arguments_fail_with_a_message_naming_the_value(tmp_path, capsys, arguments, message):
    budget = [] if "--token-budget" in arguments else ["--token-budget", "8192"]
    assert main(TINY_BASE + budget + arguments + ["--output-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "arguments, fits",
    [
        ([], True),
        (["--token-budget", "8192"], False),
        (["--repetitions", "1"], False),
        (["--unique-tokens", "8192"], False),
    ],
)
def test_only_the_presets_own_budget_may_raise_repetitions(tmp_path, arguments, fits):
    # The offline fallback corpus is smaller than the small preset's budget at
    # R = 1: the default plan may repeat data to run anyway; a budget or R the
    # user chose is kept exactly (and is an error if it does not fit).
    args = build_parser().parse_args(
        ["train", "--output-dir", str(tmp_path)] + arguments
    )
    assert resolve_config(args)["fit_repetitions"] is fits


@pytest.mark.backend_independent
def test_mutually_exclusive_budget_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--output-dir", str(tmp_path), "--unique-tokens", "10",
              "--token-budget", "10"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.backend_independent
def test_help_shows_each_recipe_default_as_run_spec_writes_it():
    import dataclasses

    from keras_dualobj.cli.recipe_flags import FLAGS
    from keras_dualobj.training import RunSpec

    from keras_dualobj.study.defaults import STUDY_DEFAULTS

    commands = build_parser()._subparsers._group_actions[0].choices
    defaults = {field.name: field.default for field in dataclasses.fields(RunSpec)}
    assert set(FLAGS) <= set(defaults), "every recipe flag is a RunSpec field"
    for command, own_defaults in (("train", {}), ("study", STUDY_DEFAULTS)):
        actions = {action.dest: action for action in commands[command]._actions}
        for field in set(FLAGS) & set(actions):
            assert actions[field].default is None, field  # so that --resume sees what was given
            default = own_defaults.get(field, defaults[field])
            if default is not None:
                assert actions[field].help.endswith(f"(default: {default})"), (command, field)
    assert "(default: 2)" in {a.dest: a for a in commands["study"]._actions}["elbo_samples"].help
