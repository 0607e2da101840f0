"""Issue 24, items 1-5: what a newcomer meets in the first hour does what it says.

The quick study fits the offline corpus and a refused study names only the flags that
differ; `--max-steps` beyond the plan and `--resume` of a folder without a run are
errors raised before anything is written; `--overwrite` deletes only what a run wrote
(its manifest) and `save_to_preset` refuses a non-empty folder; `run.json` records the
R the plan ran; `--preset` help lists every preset; `train --ar-fraction 63/64` works;
the study takes `--threads` and every recipe flag of `train`.
"""

import contextlib
import io
import json
import shutil

import pytest

from keras_dualobj.cli import build_parser
from keras_dualobj.cli import main

from conftest import tiny_dual_lm

# The offline corpus; nano on rows of 32 x 8: data in a few seconds, a step in ms.
NANO = ("--preset", "nano", "--source", "builtin", "--sequence-length", "32", "--batch-size", "8")


def run_cli(*arguments):
    """`main(arguments)` in this process: `(exit code, stdout, stderr)`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(argument) for argument in arguments])
    return code, out.getvalue(), err.getvalue()


def last_line(text):
    return text.strip().splitlines()[-1]


# === 1. The quick study on the offline corpus; a refused study names its flags ===


class _StopBeforeTraining(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """Stops a study at its first cell: the planning runs, no model is trained."""
    from keras_dualobj.study import runner

    def stop(cell, config, data, cell_dir, on_step=None):
        raise _StopBeforeTraining(config.token_budget)

    monkeypatch.setattr(runner, "run_cell", stop)


def test_quick_study_lowers_its_budget_to_fit_the_offline_corpus(tmp_path, no_training, capsys):
    # 3,258 rows x 128 = 417,024 usable tokens: C = 2^19 at R = 1 does not fit; the
    # largest multiple of 32 x 128 x lcm(1, 16) = 65,536 that does is 393,216.
    with pytest.raises(_StopBeforeTraining) as stopped:
        main(["study", "--quick", "--source", "builtin", "--output", str(tmp_path / "quick")])
    assert stopped.value.args == (393_216,)
    printed = capsys.readouterr().out
    assert "note: the training split holds 417,024 usable tokens" in printed
    assert "every cell trains on C = 393,216 instead" in printed and "--token-budget" in printed
    stored = json.loads((tmp_path / "quick" / "study.json").read_text())
    assert stored["token_budget"] == 393_216 and stored["repetitions"] == [1, 16]


def test_a_study_budget_the_user_gave_is_refused_in_flags_and_leaves_no_study(tmp_path):
    code, _, err = run_cli(
        "study", "--quick", "--source", "builtin", "--token-budget", 524_288,
        "--output", tmp_path / "mine",
    )
    assert code == 2
    message = last_line(err)
    assert "--token-budget 524,288 needs C / R = 524,288 unique tokens at R = 1" in message
    assert "the largest that fits is --token-budget 393,216" in message
    assert "token_budget=" not in message  # flags, not Python arguments
    assert not (tmp_path / "mine").exists()  # nothing for a retry to trip over


@pytest.mark.backend_independent
def test_a_different_study_in_the_folder_is_refused_naming_only_the_differing_flags(tmp_path):
    from keras_dualobj.cli.study import study_config

    folder = tmp_path / "study"
    (folder / "cells" / "alpha0_R1").mkdir(parents=True)
    other = study_config(build_parser().parse_args(
        ["study", "--output", str(folder), "--quick", "--preset", "tiny", "--source", "builtin",
         "--seed", "7"]
    ))
    (folder / "study.json").write_text(json.dumps(other.to_json(), indent=1))
    before = (folder / "study.json").read_text()
    code, _, err = run_cli("study", "--quick", *NANO[:4], "--output", folder)
    assert code == 2
    message = last_line(err)
    assert "holds a study with another configuration: --preset tiny there, nano now; " \
           "--seed 7 there, 0 now." in message, message
    assert "{" not in message and len(message) < 400, message
    assert (folder / "study.json").read_text() == before


# === 2. --max-steps beyond the plan ===


def test_max_steps_beyond_the_plan_is_an_error_before_anything_is_written(tmp_path):
    # 8,192 tokens = 32 steps of 8 x 32.
    arguments = ("train", *NANO, "--token-budget", 8192, "--max-steps", 40)
    code, _, err = run_cli(*arguments, "--output-dir", tmp_path / "new")
    assert code == 2
    message = last_line(err)
    assert "--max-steps 40 is more than the 32 steps of the run's plan" in message, message
    for flag in ("--token-budget", "--repetitions", "--batch-size 8", "--sequence-length 32"):
        assert flag in message, flag
    assert not (tmp_path / "new").exists()
    # Not even --overwrite deletes anything before the check.
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"config": {"seed": 5}, "total_steps": 1}))
    (old / "manifest.json").write_text(json.dumps({"files": ["run.json"], "folders": []}))
    code, _, err = run_cli(*arguments, "--output-dir", old, "--overwrite")
    assert code == 2 and "--max-steps 40" in last_line(err)
    assert sorted(path.name for path in old.iterdir()) == ["manifest.json", "run.json"]


# === 3. --resume needs a run ===


def test_resume_of_a_folder_without_a_run_is_an_error(tmp_path):
    from keras_dualobj.training import check_output_dir

    typo = tmp_path / "rnus" / "small"
    code, _, err = run_cli(
        "train", *NANO, "--token-budget", 8192, "--max-steps", 1, "--output-dir", typo, "--resume"
    )
    assert code == 2
    message = last_line(err)
    assert f"--resume: nothing to resume: '{typo}' holds no training run" in message, message
    assert "Check --output-dir, or drop --resume to start a new run there" in message
    assert not typo.exists()
    # The Python API says the same for an empty folder or one of other files.
    (tmp_path / "notes").mkdir()
    for _ in range(2):
        with pytest.raises(ValueError, match=r"nothing to resume: .* \(no run.json\)"):
            check_output_dir(tmp_path / "notes", {}, resume=True)
        (tmp_path / "notes" / "a.txt").write_text("mine")


# === 4 and 5. What a run writes: manifest, --overwrite, run.json; save_to_preset ===


@pytest.fixture(scope="module")
def nano_run(tmp_path_factory):
    """A 2-step dry run of nano at its own budget (589,824 tokens: R raised to 2 on the
    offline corpus), through the command line (a CLI training run: its tests run in the
    torch pass; the manifest code is the same on every backend)."""
    folder = tmp_path_factory.mktemp("nano") / "run"
    code, _, err = run_cli(
        "train", *NANO, "--max-steps", 2, "--eval-batches", 1, "--sample-length", 4,
        "--prompt-length", 4, "--output-dir", folder,
    )
    assert code == 0, err
    return folder


@pytest.mark.end_to_end("torch")
def test_run_json_records_the_repetitions_the_plan_ran(nano_run):
    config = json.loads((nano_run / "run.json").read_text())["config"]
    summary = json.loads((nano_run / "summary.json").read_text())
    assert "seen R = 2 times (R raised from 1" in summary["plan"]
    assert config["repetitions"] == 2 and config["fit_repetitions"] is True
    # The same command again is the same run (asking for R = 1, which the plan raises).
    code, _, err = run_cli("train", *NANO, "--max-steps", 2, "--output-dir", nano_run)
    assert code == 2 and "holds a training run with the same configuration" in last_line(err)


@pytest.mark.end_to_end("torch")
def test_overwrite_deletes_only_what_the_run_wrote(nano_run, tmp_path):
    from keras_dualobj.training import check_output_dir

    folder = tmp_path / "run"
    shutil.copytree(nano_run, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"run.json", "model.keras", "summary.json", "tokenizer", "logs/training_log.csv",
            "checkpoints/step_00000002"} <= set(manifest["files"])
    mine = {"logs/my_notes.txt": "mine", "checkpoints/README": "mine too", "data.txt": "also"}
    for name, text in mine.items():
        (folder / name).write_text(text)
    assert check_output_dir(folder, {}, overwrite=True) == "new"
    left = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert left == sorted(mine)
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoints", "data.txt", "logs"]


def test_save_to_preset_refuses_a_non_empty_folder_unless_told(tmp_path):
    from keras_dualobj import DualLM

    model = tiny_dual_lm()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty .*'notes.txt'.*overwrite=True"):
        model.save_to_preset(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    model.save_to_preset(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert DualLM.from_preset(tmp_path).backbone.num_layers == model.backbone.num_layers
    with pytest.raises(TypeError, match="overwrite"):
        model.save_to_preset(tmp_path, overwrite="yes")


# === 5. The small command-line items ===


@pytest.mark.backend_independent
def test_preset_help_lists_every_preset():
    from keras_dualobj.models.presets import PRESETS

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("train", "study"):
        preset_help = next(
            action.help for action in subparsers[command]._actions if action.dest == "preset"
        )
        for name in PRESETS:
            assert name in preset_help, (command, name)


@pytest.mark.backend_independent
def test_train_reads_ar_fraction_as_a_fraction_like_the_study():
    from keras_dualobj.cli.train import resolve_config

    args = build_parser().parse_args(["train", "--output-dir", "x", "--ar-fraction", "63/64"])
    assert resolve_config(args)["ar_fraction"] == 0.984375
    study = build_parser().parse_args(["study", "--output", "x", "--ar-fractions", "63/64"])
    assert study.ar_fractions == [args.ar_fraction]


@pytest.mark.backend_independent
def test_study_takes_threads_and_every_recipe_flag_of_train(monkeypatch, tmp_path):
    import keras_dualobj.study
    from keras_dualobj.cli import study as study_command
    from keras_dualobj.utils import threads

    arguments = ["study", "--output", str(tmp_path / "study"), "--quick", "--threads", "1",
                 "--precision", "mixed_bfloat16", "--backbone-override", "num_layers=1"]
    config = study_command.study_config(build_parser().parse_args(arguments))
    assert config.recipe.precision == "mixed_bfloat16"
    assert config.recipe.backbone_overrides == {"num_layers": 1}
    calls = []
    monkeypatch.setattr(threads, "set_compute_threads", calls.append)
    monkeypatch.setattr(keras_dualobj.study, "run_study", lambda *args, **kwargs: calls.append("study"))
    monkeypatch.setattr(study_command, "finish_study", lambda args: calls.append("analysis"))
    assert main(arguments) == 0
    assert calls == [1, "study", "analysis"]
