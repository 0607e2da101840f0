"""`keras-dualobj train` at scale: the paper's preset as a dry run, and bad flags.

On every backend a tiny override of `paper-470m` trains two updates, each of two
accumulated micro-batches, in `mixed_bfloat16` on one device (`--max-steps`). The
same command under `--distribution model:2x2` runs in `distribution_checks.py`
(JAX, four virtual devices).
"""

import json

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


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("dry_run") / "run"
    code = main(DRY_RUN + ["--output-dir", str(output_dir)])
    return code, output_dir


def test_paper_preset_dry_run_trains_two_accumulated_updates(dry_run, capsys):
    code, output_dir = dry_run
    assert code == 0
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["steps_done"] == 2 and summary["total_steps"] > 2
    assert summary["parameters"]["total"] < 200_000  # the override, not 470M
    config = json.loads((output_dir / "run.json").read_text())["config"]
    assert config["precision"] == "mixed_bfloat16" and config["accumulation_steps"] == 2
    assert config["backbone_overrides"]["num_layers"] == 2
    assert config["learning_rate"] == 7e-3 and config["optimizer"] == "muon"
    # Checkpoints and logs count fit() steps: 2 updates x 2 micro-batches.
    assert (output_dir / "checkpoints" / "step_00000004").is_dir()
    restored = keras.saving.load_model(output_dir / "model.keras")
    assert restored.backbone.dtype_policy.name == "mixed_bfloat16"
    assert int(restored.optimizer.iterations) == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distribution", "model:2"], "accepted are"),
        (["--accumulation-steps", "3"], "accumulation_steps"),
        (["--precision", "float8"], "precision"),
        (["--max-steps", "0"], "max_steps"),
    ],
)
def test_bad_scale_flags_are_refused(flags, message, tmp_path, capsys):
    assert main(DRY_RUN + flags + ["--output-dir", str(tmp_path / "bad")]) == 2
    assert message in capsys.readouterr().err


def test_backbone_override_needs_name_and_value(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(DRY_RUN + ["--backbone-override", "num_layers", "--output-dir", str(tmp_path)])
    assert "NAME=VALUE" in capsys.readouterr().err


if keras.backend.backend() not in DISTRIBUTION_BACKENDS:

    def test_distribution_flag_is_refused_off_jax(tmp_path, capsys):
        flags = ["--distribution", "data", "--output-dir", str(tmp_path / "off")]
        assert main(DRY_RUN + flags) == 2
        assert "JAX backend" in capsys.readouterr().err
