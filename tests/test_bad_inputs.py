"""A catalogue of bad inputs: each raises a clear error and leaves every file as it was.

Every case names the exception type and a message that says what was wrong (the
offending value) and what is accepted. The Python API cases share one tiny model and
one folder of saved files (a `.keras` model, a training checkpoint, corpora); after
each case the model's weights and every byte (and modification time) of that folder
are unchanged. The CLI cases run `keras_dualobj.cli.main` in this process and check
the exit code and the one-line message on stderr (never a traceback).
"""

import contextlib
import io
import json
import math
import shutil

import keras
import numpy as np
import pytest

from keras_dualobj import DualLM
from keras_dualobj.cli import main
from keras_dualobj.data import ByteTokenizer
from keras_dualobj.data import load_corpus
from keras_dualobj.data import load_tokenizer
from keras_dualobj.data import pack_documents
from keras_dualobj.data import plan_repetition
from keras_dualobj.training import train
from keras_dualobj.training import TrainingDivergedError
from keras_dualobj.training.checkpoints import load_training_state
from keras_dualobj.training.checkpoints import save_training_state

from conftest import tiny_backbone

VOCAB = 48
MAX_LENGTH = 16
GOOD_IDS = np.full((2, 8), 7, "int32")


def bad_inputs_backbone(hidden_dim=16, vocabulary_size=VOCAB):
    return tiny_backbone(
        vocabulary_size=vocabulary_size, num_layers=1, hidden_dim=hidden_dim,
        intermediate_dim=32, max_sequence_length=MAX_LENGTH,
    )


def tiny_model(hidden_dim=16):
    model = DualLM(bad_inputs_backbone(hidden_dim), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One folder of saved files every case must leave untouched."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    model = tiny_model()  # untrained: the checkpoint builds the optimizer's variables
    model.save(folder / "model.keras")
    save_training_state(model, folder / "checkpoint", step=1)
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(folder / "foreign.keras")
    raw = (folder / "model.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(raw[: len(raw) // 2])
    (folder / "garbage.keras").write_bytes(b"not a zip archive\n" * 50)
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "latin1.txt").write_bytes("café au lait\n\nencore".encode("latin-1"))
    (folder / "empty_folder").mkdir()
    (folder / "other_field.jsonl").write_text('{"content": "no text field here"}\n')
    (folder / "a_file").write_text("I am a file, not a folder\n")
    _damaged_checkpoints(folder)
    return {"folder": folder, "model": model}


def _damaged_checkpoints(folder):
    source = folder / "checkpoint"
    state = (source / "state.npz").read_bytes()
    foreign = io.BytesIO()
    np.savez(foreign, weights=np.zeros(3))
    damage = {
        "garbage_state": {"state.npz": b"garbage" * 20},
        "truncated_state": {"state.npz": state[: len(state) // 2]},
        "bad_json": {"checkpoint.json": b"{not json"},
        "foreign_json": {"checkpoint.json": b"[1, 2, 3]"},
        "incomplete_json": {"checkpoint.json": b'{"format": 1, "step": 3}'},
        "foreign_state": {"state.npz": foreign.getvalue()},
    }
    for name, replaced in damage.items():
        shutil.copytree(source, folder / name)
        for file_name, content in replaced.items():
            (folder / name / file_name).write_bytes(content)
    shutil.copytree(source, folder / "no_state")
    (folder / "no_state" / "state.npz").unlink()


def _snapshot(folder):
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]


@pytest.fixture
def untouched(files):
    """Checks after the case that no saved file and no model weight changed."""
    before = _snapshot(files["folder"])
    weights = _weights(files["model"])
    yield files
    assert _snapshot(files["folder"]) == before
    for old, new in zip(weights, _weights(files["model"])):
        np.testing.assert_array_equal(old, new)


def _packed_rows():
    """Two documents of 39 tokens (plus `<s>`) packed into 10 rows of 8."""
    return pack_documents([np.arange(5, 44)] * 2, 8)


def _with_ids(**changes):
    ids = GOOD_IDS.copy()
    for (row, column), value in changes.get("at", {}).items():
        ids[row, column] = value
    return ids


# === The Python API ===

API_CASES = {
    # Token ids: dtype, rank, range, length.
    "float token ids": (
        lambda m, f: m(GOOD_IDS.astype("float32")), TypeError, "must be integers.*float32"),
    "rank-1 token ids": (
        lambda m, f: m(GOOD_IDS[0]), ValueError, r"shape \[batch, length\]; received shape \(8,\)"),
    "rank-3 token ids": (
        lambda m, f: m(GOOD_IDS[None]), ValueError, r"shape \[batch, length\]; received shape \(1, 2, 8\)"),
    "id equal to the vocabulary size": (
        lambda m, f: m(_with_ids(at={(1, 3): VOCAB})), ValueError, r"token id 48.*accepted: 0\.\.47"),
    "negative id": (
        lambda m, f: m(_with_ids(at={(0, 2): -1})), ValueError, r"token id -1.*accepted: 0\.\.47"),
    "row longer than max_sequence_length": (
        lambda m, f: m(np.full((1, MAX_LENGTH + 4), 7, "int32")), ValueError,
        "20 tokens long.*max_sequence_length of 16"),
    "document ids of another shape": (
        lambda m, f: m({"token_ids": GOOD_IDS, "document_ids": np.zeros((2, 5), "int32")}),
        ValueError, r"`document_ids` must have the shape of `token_ids` \(2, 8\); received shape \(2, 5\)"),
    "prefix lengths of another batch": (
        lambda m, f: m({"token_ids": GOOD_IDS, "prefix_lengths": np.zeros(3, "int32")}, mode="prefix"),
        ValueError, r"`prefix_lengths` must have shape \[batch\] = \(2,\); received shape \(3,\)"),
    "negative prefix length": (
        lambda m, f: m({"token_ids": GOOD_IDS, "prefix_lengths": np.array([2, -1])}, mode="prefix"),
        ValueError, r"`prefix_lengths` must be >= 0.*\[2, -1\]"),
    "unknown input key": (
        lambda m, f: m({"tokens": GOOD_IDS}), ValueError, r"received keys \['tokens'\]"),
    "unknown attention mode": (
        lambda m, f: m(GOOD_IDS, mode="sideways"), ValueError, r"`mode` must be one of.*'sideways'"),
    "fit on ids beyond the vocabulary": (
        lambda m, f: m.fit(_with_ids(at={(0, 7): 60}), verbose=0), ValueError, "token id 60.*0\\.\\.47"),
    "fit on rows too long": (
        lambda m, f: m.fit(np.full((2, 32), 7, "int32"), verbose=0), ValueError, "max_sequence_length of 16"),
    "fit on float rows": (
        lambda m, f: m.fit(GOOD_IDS.astype("float64"), verbose=0), TypeError, "integers.*float64"),
    "fit with labels": (
        lambda m, f: m.fit(GOOD_IDS, GOOD_IDS, verbose=0), ValueError, "own targets"),
    "evaluate on a negative id": (
        lambda m, f: m.evaluate(_with_ids(at={(1, 1): -5}), verbose=0), ValueError, "token id -5"),
    "generate from a prompt beyond the vocabulary": (
        lambda m, f: m.generate([[1, 60]], max_new_tokens=2), ValueError, "token id 60.*0..47"),
    "generate from a negative prompt id": (
        lambda m, f: m.generate([[1, -3]], max_new_tokens=2), ValueError, r"negative token id.*\[1, -3\]"),
    "generate past max_sequence_length": (
        lambda m, f: m.generate([[1, 5]], max_new_tokens=40), ValueError, "42 tokens.*max_sequence_length of 16"),
    "score ids beyond the vocabulary": (
        lambda m, f: m.score(_with_ids(at={(0, 0): 99})), ValueError, "token id 99"),
    # Model arguments.
    "ar_fraction above 1": (
        lambda m, f: DualLM(m.backbone, ar_fraction=1.5), ValueError, r"ar_fraction.*\[0.0, 1.0\].*1\.5"),
    "ar_fraction below 0": (
        lambda m, f: DualLM(m.backbone, ar_fraction=-0.1), ValueError, r"ar_fraction.*\[0.0, 1.0\].*-0\.1"),
    "ar_fraction NaN": (
        lambda m, f: DualLM(m.backbone, ar_fraction=math.nan), ValueError, "finite number.*ar_fraction=nan"),
    "elbo_seed beyond the int32 hash": (
        lambda m, f: DualLM(m.backbone, elbo_seed=2**31), ValueError, r"elbo_seed.*<= 2147483647.*2147483648"),
    "ar_fraction as a string": (
        lambda m, f: DualLM(m.backbone, ar_fraction="0.5"), TypeError, "must be a number.*'0.5'"),
    "special id that does not match the tokenizer": (
        lambda m, f: DualLM(
            bad_inputs_backbone(vocabulary_size=272), tokenizer=ByteTokenizer(), mask_token_id=5
        ),
        ValueError, "`mask_token_id`=5 does not match the tokenizer's mask_token_id=4"),
    "tokenizer larger than the vocabulary": (
        lambda m, f: DualLM(m.backbone, tokenizer=ByteTokenizer()), ValueError,
        "tokenizer has 272 ids.*vocabulary_size is 48"),
    "unknown preset": (
        lambda m, f: DualLM.from_preset("huge"), ValueError, r"Unknown preset 'huge'.*'tiny', 'small'"),
    # Corpora.
    "missing corpus file": (
        lambda m, f: load_corpus("text", path=f / "missing.txt"), FileNotFoundError,
        "missing.txt' does not exist"),
    "empty corpus file": (
        lambda m, f: load_corpus("text", path=f / "empty.txt"), ValueError, "empty.txt holds no text"),
    "binary corpus file": (
        lambda m, f: load_corpus("text", path=f / "binary.txt"), ValueError,
        r"Cannot decode .*binary.txt' as 'utf-8'.*encoding="),
    "non-UTF-8 corpus file": (
        lambda m, f: load_corpus("text", path=f / "latin1.txt"), ValueError,
        r"latin1.txt' as 'utf-8': byte b'\\xe9' at offset 3"),
    "folder without text files": (
        lambda m, f: load_corpus("text", path=f / "empty_folder"), ValueError, "holds no .txt files"),
    "JSON lines without the text field": (
        lambda m, f: load_corpus("jsonl", path=f / "other_field.jsonl"), ValueError,
        r"other_field.jsonl:1 has no 'text' field \(found \['content'\]\)"),
    "unknown corpus source": (
        lambda m, f: load_corpus("wiki"), ValueError, "`source` must be one of.*'wiki'"),
    "missing tokenizer folder": (
        lambda m, f: load_tokenizer(f / "no_tokenizer"), FileNotFoundError, "tokenizer_config.json is missing"),
    "repetition budget larger than the data": (
        lambda m, f: plan_repetition(_packed_rows(), batch_size=2, unique_tokens=1000),
        ValueError, r"Asked for unique_tokens=1,000, but the training split holds 80 tokens"),
    "repetition budget under one batch": (
        lambda m, f: plan_repetition(_packed_rows(), batch_size=4, unique_tokens=16),
        ValueError, "fewer than one batch per epoch"),
    "zero repetitions": (
        lambda m, f: plan_repetition(_packed_rows(), batch_size=2, repetitions=0),
        ValueError, "`repetitions` must be >= 1. Received: 0"),
    # Checkpoints.
    "checkpoint of another model size": (
        lambda m, f: load_training_state(tiny_model(hidden_dim=32), f / "checkpoint"), ValueError,
        r"does not match this model's model variables.*\[48, 16\]\] vs .*\[48, 32\]"),
    "checkpoint with a garbage state": (
        lambda m, f: load_training_state(m, f / "garbage_state"), ValueError,
        "state.npz' cannot be read as a checkpoint state.*truncated or damaged"),
    "checkpoint with a truncated state": (
        lambda m, f: load_training_state(m, f / "truncated_state"), ValueError,
        "state.npz' cannot be read as a checkpoint state.*BadZipFile"),
    "checkpoint without its state": (
        lambda m, f: load_training_state(m, f / "no_state"), ValueError, "has no state.npz"),
    "checkpoint record that is not JSON": (
        lambda m, f: load_training_state(m, f / "bad_json"), ValueError,
        "checkpoint.json' is not a readable checkpoint record"),
    "checkpoint record of another program": (
        lambda m, f: load_training_state(m, f / "foreign_json"), ValueError,
        "has format 'list'; this version reads format 1"),
    "checkpoint record missing its layout": (
        lambda m, f: load_training_state(m, f / "incomplete_json"), ValueError,
        r"lacks \['model_variables', 'optimizer_variables'\]"),
    "checkpoint state of another program": (
        lambda m, f: load_training_state(m, f / "foreign_state"), ValueError,
        r"does not hold model variable .*seed_generator_state with shape \(2,\) \(found nothing\)"),
    "folder that is not a checkpoint": (
        lambda m, f: load_training_state(m, f / "empty_folder"), ValueError,
        "is not a checkpoint: checkpoint.json is missing"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_python_api_refuses_bad_input(untouched, case):
    call, error, message = API_CASES[case]
    with pytest.raises(error, match=message) as raised:
        call(untouched["model"], untouched["folder"])
    assert type(raised.value).__module__ == "builtins", type(raised.value)


# === The command line ===


def run_cli(*argv):
    """Runs the CLI in this process: (exit code, stderr)."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = main([str(argument) for argument in argv])
        except SystemExit as exit_:
            code = exit_.code
    return code, stderr.getvalue()


TRAIN = ("train", "--preset", "tiny", "--source", "builtin")

CLI_CASES = {
    "unknown command": (("fly",), r"invalid choice: 'fly' \(choose from 'train'"),
    "unknown train flag": (
        ("train", "--output-dir", "{tmp}/run", "--frobnicate"), "unrecognized arguments: --frobnicate"),
    "--ar-fraction above 1": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--ar-fraction", "1.5"),
        r"--ar-fraction must be a finite number in \[0.0, 1.0\]; received --ar-fraction 1.5"),
    "--ar-fraction NaN": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--ar-fraction", "nan"),
        r"--ar-fraction must be a finite number in \[0.0, 1.0\]; received --ar-fraction nan"),
    "--ar-fraction not a number": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--ar-fraction", "half"),
        "argument --ar-fraction: .*fraction like 63/64; received 'half'"),
    "--resume with --overwrite": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--resume", "--overwrite"),
        "--overwrite: not allowed with argument --resume"),
    "--unique-tokens with --token-budget": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--unique-tokens", "64", "--token-budget", "64"),
        "--token-budget: not allowed with argument --unique-tokens"),
    "unknown preset": (
        ("train", "--output-dir", "{tmp}/run", "--preset", "huge"), "Unknown preset 'huge'; accepted presets"),
    "--source text without --path": (
        ("train", "--preset", "tiny", "--source", "text", "--output-dir", "{tmp}/run"),
        "--source text needs --path"),
    "--path that does not exist": (
        ("train", "--preset", "tiny", "--source", "text", "--path", "{files}/missing.txt",
         "--output-dir", "{tmp}/run"), "missing.txt' does not exist"),
    "--md-variant unknown": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--md-variant", "mdlm"), "--md-variant must be one of.*--md-variant mdlm"),
    "--optimizer unknown": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--optimizer", "sgd"), r"--optimizer must be one of \['muon', 'adamw'\]"),
    "--learning-rate negative": (
        (*TRAIN, "--output-dir", "{tmp}/run", "--learning-rate", "-1"), "--learning-rate must be.*>= 0.0.*--learning-rate -1.0"),
    "--output-dir is a file": (
        (*TRAIN, "--output-dir", "{files}/a_file"), "a_file' exists and is not a folder"),
    "--output-dir holds another run": (
        (*TRAIN, "--output-dir", "{tmp}/other_run"), "--resume|--overwrite"),
    "--output of study holds another study": (
        ("study", "--quick", "--preset", "tiny", "--source", "builtin", "--output", "{tmp}/other_study"),
        "holds a study with another configuration.*seed"),
    "study α above 1": (
        ("study", "--output", "{tmp}/study", "--ar-fractions", "0.5", "1.5"), "--ar-fractions must be.*--ar-fractions 1.5"),
    "study α not a fraction": (
        ("study", "--output", "{tmp}/study", "--ar-fractions", "2/0"), "received '2/0'"),
    "recommend for R below 1": (("recommend", "--repetitions", "0"), "--repetitions must be .*>= 1.0"),
    "generate from a garbage .keras": (
        ("generate", "{files}/garbage.keras", "--prompt-ids", "1 5"), "garbage.keras' is not a `.keras` file"),
    "generate from a truncated .keras": (
        ("generate", "{files}/truncated.keras", "--prompt-ids", "1 5"), "truncated.keras' is not a `.keras` file"),
    "generate from another program's .keras": (
        ("generate", "{files}/foreign.keras", "--prompt-ids", "1 5"), "holds a Sequential, not a keras_dualobj DualLM"),
    "generate from a folder": (
        ("generate", "{files}", "--prompt-ids", "1 5"), "No saved model at"),
    "generate a prompt id beyond the vocabulary": (
        ("generate", "{files}/model.keras", "--prompt-ids", "1 60", "--max-new-tokens", "2"), "token id 60"),
    "generate prompt ids that are not integers": (
        ("generate", "{files}/model.keras", "--prompt-ids", "1 x"), "integers separated by spaces"),
    "generate at a negative temperature": (
        ("generate", "{files}/model.keras", "--prompt-ids", "1 5", "--max-new-tokens", "2", "--temperature", "-1"),
        "--temperature must be a finite number >= 0.0"),
    "evaluate a missing token file": (
        ("evaluate", "{files}/model.keras", "--token-ids", "{files}/missing.npy"), "missing.npy' does not exist"),
    "evaluate with a garbage .keras": (
        ("evaluate", "{files}/garbage.keras", "--token-ids", "{files}/missing.npy"), "is not a `.keras` file"),
}


@pytest.fixture
def cli_folder(tmp_path):
    """A scratch folder with a foreign run and a foreign study in it."""
    from keras_dualobj.cli import build_parser
    from keras_dualobj.cli.study import study_config

    (tmp_path / "other_run").mkdir()
    (tmp_path / "other_run" / "run.json").write_text(
        json.dumps({"config": {"preset": "small", "seed": 5}, "total_steps": 10})
    )
    other = study_config(
        build_parser().parse_args(
            ["study", "--output", "x", "--quick", "--preset", "tiny", "--source", "builtin", "--seed", "7"]
        )
    )
    (tmp_path / "other_study").mkdir()
    (tmp_path / "other_study" / "study.json").write_text(json.dumps(other.to_json(), indent=1))
    return tmp_path


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_line_refuses_bad_input(untouched, cli_folder, case):
    arguments, message = CLI_CASES[case]
    before = _snapshot(cli_folder)
    arguments = [
        a.format(tmp=cli_folder, files=untouched["folder"]) if isinstance(a, str) else a
        for a in arguments
    ]
    code, stderr = run_cli(*arguments)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("keras-dualobj"), stderr
    import re

    assert re.search(message, last_line), last_line
    assert _snapshot(cli_folder) == before
    assert not (cli_folder / "run").exists()


# === A user callback that makes the logits NaN ===


def test_nan_logits_from_a_callback_stop_the_run_and_keep_the_checkpoint(tmp_path):
    import tensorflow as tf

    model = tiny_model()
    rows = np.random.default_rng(0).integers(5, VOCAB, (32, 8)).astype("int32")

    def dataset(start):
        return tf.data.Dataset.from_tensor_slices(rows).repeat().batch(4).skip(start)

    class PoisonAfterStep(keras.callbacks.Callback):
        """Sets the output head to NaN as step 5 begins (after the step-4 checkpoint)."""

        def __init__(self):
            super().__init__()
            self.steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.steps += 1
            if self.steps == 5:
                head = self.model.backbone.token_embedding.reverse_embeddings
                head.assign(np.full(head.shape, np.nan, "float32"))

    with pytest.raises(TrainingDivergedError, match=r"(?i)step.*(nan|not finite|infinite)") as raised:
        train(
            model, dataset, total_steps=8, output_dir=tmp_path / "run", tokens_per_step=32,
            log_every=2, checkpoint_every=4, eval_every=4, callbacks=[PoisonAfterStep()], stream=False,
        )
    assert "step_00000004" in str(raised.value) or "checkpoint" in str(raised.value)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step_00000004"], checkpoints
    # The last good checkpoint holds finite weights and restores.
    fresh = tiny_model()
    load_training_state(fresh, tmp_path / "run" / "checkpoints" / "step_00000004")
    assert all(np.isfinite(w).all() for w in _weights(fresh) if w.dtype.kind == "f")


def test_the_catalogue_is_large():
    assert len(API_CASES) + len(CLI_CASES) + 1 >= 40


# Issue 25, item 5: checked at the public boundary, so Keras does not wrap our message.
BOUNDARY_CASES = {
    "call, an id beyond the vocabulary": (lambda m, ids: m(ids + 100), "outside the vocabulary"),
    "call, rank-3 ids": (lambda m, ids: m(ids[..., None]), r"must have shape \[batch, length\]"),
    "call, document ids of another shape": (
        lambda m, ids: m({"token_ids": ids, "document_ids": ids[:, :-1] * 0}),
        "`document_ids` must have the shape of `token_ids`"),
    "predict, an id beyond the vocabulary": (
        lambda m, ids: m.predict(ids + 100, verbose=0), "outside the vocabulary"),
}


@pytest.mark.parametrize("case", sorted(BOUNDARY_CASES))
def test_public_methods_raise_our_message_alone(case):
    act, message = BOUNDARY_CASES[case]
    model = tiny_model()
    with pytest.raises(ValueError, match=message) as raised:
        act(model, np.full((2, 8), 5, "int32"))
    assert "Exception encountered" not in str(raised.value)
