"""`RunSpec`: one home for a run's settings, shared by `keras-dualobj train` and the study."""

import ast
import inspect

import keras
import numpy as np
import pytest

from keras_dualobj.cli import build_parser
from keras_dualobj.cli.study import study_config
from keras_dualobj.cli.train import resolve_config
from keras_dualobj.models.presets import get_preset
from keras_dualobj.study import StudyConfig
from keras_dualobj.study import plan_cells
from keras_dualobj.study import runner
from keras_dualobj.training import RunSpec


@pytest.mark.backend_independent
def test_train_command_defaults_are_the_specs(tmp_path):
    args = build_parser().parse_args(["train", "--preset", "small", "--output-dir", str(tmp_path)])
    config = resolve_config(args)
    spec = RunSpec(preset="small").resolved()
    assert {k: v for k, v in config.items() if k != "format"} == spec.to_json()
    training = get_preset("small")["training"]
    assert (spec.tokenizer, spec.sequence_length, spec.batch_size) == (
        training["tokenizer"], training["sequence_length"], training["batch_size"]
    )
    assert (spec.warmup_fraction, spec.decay_fraction, spec.weight_decay) == (0.01, 0.25, 0.1)
    explicit = build_parser().parse_args(
        ["train", "--output-dir", str(tmp_path), "--dropout", "0.1", "--warmup-fraction", "0.05"]
    )
    changed = resolve_config(explicit)
    assert (changed["dropout"], changed["warmup_fraction"]) == (0.1, 0.05)


@pytest.mark.backend_independent
def test_the_study_uses_the_same_defaults_and_can_set_every_option():
    config = StudyConfig((0.0, 1.0), (1, 2), token_budget=2 * 16 * 64, preset="tiny")
    train_spec = RunSpec(preset="tiny").resolved()
    for name in RunSpec.field_names():
        if name in ("elbo_samples", "token_budget", "repetitions", "fit_repetitions"):
            continue  # the grid's own (its budget is exact), and the study's one default
        assert getattr(config.recipe, name) == getattr(train_spec, name), name
    assert config.recipe.elbo_samples == 2  # the study's one documented default of its own
    assert train_spec.fit_repetitions is True and config.recipe.fit_repetitions is False
    tuned = StudyConfig(
        (0.5,), (1,), token_budget=16 * 64, preset="tiny", dropout=0.1, md_variant="unshifted",
        ar_loss_weight=2.0, z_loss_weight=1e-4, decay_shape="cosine", weight_decay=0.0,
        clip_norm=1.0,
    )
    cell = plan_cells(tuned)[0]
    spec = tuned.cell_spec(cell)
    assert (spec.ar_fraction, spec.repetitions, spec.dropout, spec.md_variant) == (0.5, 1, 0.1, "unshifted")
    assert tuned.to_json()["recipe"]["clip_norm"] == 1.0
    with pytest.raises(ValueError, match="set per cell by the grid"):
        StudyConfig((0.5,), (1,), token_budget=16 * 64, preset="tiny", ar_fraction=0.5)
    with pytest.raises(ValueError, match="Unknown run settings"):
        StudyConfig((0.5,), (1,), token_budget=16 * 64, recipe=RunSpec(), learning_rat=1.0)


@pytest.mark.backend_independent
def test_study_command_passes_recipe_flags(tmp_path):
    args = build_parser().parse_args(
        ["study", "--quick", "--output", str(tmp_path), "--dropout", "0.2", "--clip-norm", "0.5"]
    )
    config = study_config(args)
    assert (config.recipe.dropout, config.recipe.clip_norm, config.recipe.warmup_fraction) == (0.2, 0.5, 0.01)


def test_spec_builds_model_optimizer_and_data():
    spec = RunSpec(
        preset="tiny", source="builtin", ar_fraction=0.25, dropout=0.1, md_variant="unshifted",
        ar_loss_weight=2.0, z_loss_weight=1e-4, elbo_samples=3, warmup_fraction=0.1,
        token_budget=4 * 16 * 64, seed=5,
    ).resolved()
    data = spec.prepare_data(verbose=False)
    assert data.plan.total_steps == 4 and data.plan.sequence_length == 64
    model = spec.build_model(tokenizer=data.tokenizer)
    assert (model.ar_fraction, model.md_variant, model.ar_loss_weight, model.z_loss_weight) == (
        0.25, "unshifted", 2.0, 1e-4
    )
    assert (model.elbo_samples, model.seed, model.backbone.dropout) == (3, 5, 0.1)
    spec.compile(model, total_steps=100)
    schedule = model.optimizer.learning_rate if callable(model.optimizer.learning_rate) else None
    config = model.optimizer.get_config()["learning_rate"]["config"]
    assert config["warmup_fraction"] == 0.1 and config["total_steps"] == 100
    assert schedule is None or float(keras.ops.convert_to_numpy(schedule(0))) < spec.learning_rate
    rebuilt = spec.build_model(tokenizer=data.tokenizer)  # seeded: the same initial weights
    tokens = np.array([[1, 20, 21, 22]], "int32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(tokens)), keras.ops.convert_to_numpy(rebuilt(tokens)), atol=1e-6
    )


@pytest.mark.backend_independent
def test_spec_refuses_unknown_or_unresolved_settings():
    with pytest.raises(ValueError, match="Unknown run settings"):
        RunSpec.from_json({"preset": "tiny", "warmup": 0.1})
    assert RunSpec.from_json({**RunSpec().to_json(), "format": 1}) == RunSpec()
    with pytest.raises(ValueError, match=r"resolved\(\)"):
        RunSpec().build_model(vocabulary_size=272)
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        RunSpec(preset="huge").resolved()


@pytest.mark.backend_independent
def test_runner_uses_no_private_helper_of_training():
    tree = ast.parse(inspect.getsource(runner))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_dualobj.training")
        for alias in node.names
    ]
    assert imported and not [name for name in imported if name.startswith("_")]
