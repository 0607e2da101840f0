"""`keras-dualobj train` at scale: the paper's preset as a dry run, and bad flags.

A tiny override of `paper-470m` trains two updates, each of two accumulated
micro-batches, in `mixed_bfloat16` (`--max-steps`): on one device on TensorFlow and
PyTorch, under `--distribution model:2x2` on JAX (in `distribution_checks.py`, four
virtual devices, checked by `test_distribution.py` with `check_dry_run`).
"""

import json
from pathlib import Path

import keras
import pytest

from keras_dualobj.cli import main
from keras_dualobj.training.distribution import DISTRIBUTION_BACKENDS

# The paper's preset shrunk to CPU size: 2 updates of 8 rows in 2 micro-batches each.
DRY_RUN = [
    "train", "--preset", "paper-470m", "--backbone-override", "num_layers=2",
    "--backbone-override", "hidden_dim=64", "--backbone-override", "num_heads=4",
    "--backbone-override", "intermediate_dim=96", "--tokenizer", "byte",
    "--sequence-length", "32", "--batch-size", "8", "--accumulation-steps", "2",
    "--precision", "mixed_bfloat16", "--token-budget", "65536", "--max-steps", "2",
    "--log-every", "1", "--eval-every", "2", "--source", "builtin", "--eval-batches", "1",
    "--sample-length", "4", "--prompt-length", "4",
]


def dry_run_facts(code, output_dir):
    """What a dry run left behind, as JSON (also read back from the JAX subprocess)."""
    output_dir = Path(output_dir)
    summary = json.loads((output_dir / "summary.json").read_text())
    restored = keras.saving.load_model(output_dir / "model.keras")
    return {
        "exit_code": code,
        "summary": summary,
        "config": json.loads((output_dir / "run.json").read_text())["config"],
        "checkpoints": sorted(path.name for path in (output_dir / "checkpoints").iterdir()),
        "policy": restored.backbone.dtype_policy.name,
        "updates": int(restored.optimizer.iterations),
    }


def check_dry_run(facts):
    assert facts["exit_code"] == 0
    summary = facts["summary"]
    assert summary["steps_done"] == 2 and summary["total_steps"] > 2
    assert summary["parameters"]["total"] < 200_000  # the override, not 470M
    assert set(summary["held_out"]) >= {"ar_loss", "md_loss"}
    config = facts["config"]
    assert config["precision"] == "mixed_bfloat16" and config["accumulation_steps"] == 2
    assert config["backbone_overrides"]["num_layers"] == 2
    assert config["learning_rate"] == 7e-3 and config["optimizer"] == "muon"
    # Checkpoints and logs count fit() steps: 2 updates x 2 micro-batches.
    assert facts["checkpoints"][-1] == "step_00000004"
    assert facts["policy"] == "mixed_bfloat16" and facts["updates"] == 2


if keras.backend.backend() not in DISTRIBUTION_BACKENDS:
    # On JAX the same command runs under `--distribution model:2x2` in
    # `distribution_checks.py` and `test_distribution.py` checks it the same way.

    @pytest.mark.end_to_end("torch")
    def test_paper_preset_dry_run_trains_two_accumulated_updates(tmp_path):
        output_dir = tmp_path / "run"
        check_dry_run(dry_run_facts(main(DRY_RUN + ["--output-dir", str(output_dir)]), output_dir))

    def test_distribution_flag_is_refused_off_jax(tmp_path, capsys):
        flags = ["--distribution", "data", "--output-dir", str(tmp_path / "off")]
        assert main(DRY_RUN + flags) == 2
        assert "JAX backend" in capsys.readouterr().err


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distribution", "model:2"], "accepted are"),
        (["--accumulation-steps", "3"], "--accumulation-steps"),
        (["--precision", "float8"], "precision"),
        (["--max-steps", "0"], "--max-steps must be"),
    ],
)
def test_bad_scale_flags_are_refused(flags, message, tmp_path, capsys):
    assert main(DRY_RUN + flags + ["--output-dir", str(tmp_path / "bad")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.backend_independent
def test_backbone_override_needs_name_and_value(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(DRY_RUN + ["--backbone-override", "num_layers", "--output-dir", str(tmp_path)])
    assert "NAME=VALUE" in capsys.readouterr().err

