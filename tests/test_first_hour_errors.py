"""Issue 24, item 6: errors in the user's voice, before the slow imports.

The command line parses its flags and checks `KERAS_BACKEND` before Keras (and so
TensorFlow) is imported; every error is one line that speaks in flags; a Python
error names the fix; the checks that need no model run before one is loaded.
"""

import contextlib
import importlib.util
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_dualobj.cli import main
from keras_dualobj.cli.arguments import check_backend
from keras_dualobj.cli.arguments import in_flags
from keras_dualobj.data import ByteTokenizer

from conftest import REPO_ROOT
from conftest import one_thread_environment
from conftest import tiny_backbone
from conftest import tiny_dual_lm

HEAVY = ("keras", "tensorflow", "jax", "torch")


def byte_backbone():
    return tiny_backbone(vocabulary_size=ByteTokenizer().vocabulary_size())


def run_cli(*arguments):
    """`main(arguments)` in this process: `(exit code, stderr)`."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(argument) for argument in arguments])
    return code, err.getvalue()


def run_python(code, cwd, **environment):
    """`code` in a fresh one-thread interpreter in `cwd`: `(exit code, stdout, stderr)`."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=one_thread_environment(PYTHONPATH=str(REPO_ROOT), **environment),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return completed.returncode, completed.stdout, completed.stderr


# The CLI's own process: what it imported once it answered.
ANSWER_AND_LIST_IMPORTS = """
import contextlib, io, sys
from keras_dualobj.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(code)
print(err.getvalue().strip().splitlines()[-1])
print(" ".join(name for name in {heavy} if name in sys.modules))
""".format(heavy=HEAVY)


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "arguments, environment, message",
    [
        (["train", "--output-dir", "run", "--learning-rates", "1"], {}, "unrecognized arguments"),
        (["train", "--output-dir", "run"], {"KERAS_BACKEND": "pytorch"},
         "KERAS_BACKEND='pytorch' is not a backend keras-dualobj runs on: set KERAS_BACKEND to "
         "tensorflow, jax or torch (did you mean 'torch'?)."),
    ],
    ids=["a mistyped flag", "KERAS_BACKEND=pytorch"],
)
def test_a_bad_flag_or_backend_answers_in_one_line_before_keras_is_imported(
    arguments, environment, message, tmp_path
):
    code, out, err = run_python(ANSWER_AND_LIST_IMPORTS.replace("sys.argv[1:]", repr(arguments)),
                                tmp_path, **environment)
    assert code == 0, err
    exit_code, last_line, imported = out.splitlines()
    assert exit_code == "2" and message in last_line and "Traceback" not in err
    assert imported == "", f"imported {imported} before answering"


@pytest.mark.backend_independent
def test_a_missing_backend_names_the_extra_that_installs_it(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"selects torch, which is not installed: "
                                          r"pip install 'keras-dualobj\[torch\]'"):
        check_backend({"KERAS_BACKEND": "torch"})
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    code, err = run_cli("recommend", "--repetitions", "4")
    assert code == 2 and "pip install 'keras-dualobj[torch]'" in err


@pytest.mark.backend_independent
def test_the_backend_in_keras_config_file_is_checked_when_the_variable_is_unset(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "numpy"}))
    with pytest.raises(ValueError, match=r"Keras' config file='numpy' is not a backend"):
        check_backend({"KERAS_HOME": str(tmp_path)})
    assert check_backend({"KERAS_HOME": str(tmp_path / "absent")}) == "tensorflow"


@pytest.mark.backend_independent
def test_library_messages_are_rewritten_in_flags():
    flags = {"encoding": "--encoding", "path": "--path", "source": "--source"}
    message = ("source='text' needs `path`. Pass the file's encoding, e.g. encoding='latin-1' "
               "(any codec); the file's path=x.txt stays.")
    assert in_flags(message, flags) == (
        "--source text needs --path. Pass the file's encoding, e.g. --encoding latin-1 "
        "(any codec); the file's --path x.txt stays."
    )
    # A name inside a longer word or a dotted name is not a parameter.
    assert in_flags("use sub.path=3 and xpath=2", flags) == "use sub.path=3 and xpath=2"


@pytest.mark.backend_independent
def test_a_file_that_is_not_utf8_is_named_with_the_flag_that_fixes_it(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_bytes("Caf\u00e9 cr\u00e8me\n\nMore text.".encode("latin-1"))
    code, err = run_cli("train", "--output-dir", tmp_path / "run", "--preset", "nano",
                        "--source", "text", "--path", text)
    assert code == 2 and "corpus.txt" in err and "--encoding latin-1" in err
    assert "encoding='latin-1'" not in err
    # evaluate reads its --text before loading the model (no model is needed to refuse it).
    code, err = run_cli("evaluate", tmp_path / "absent.keras", "--text", text)
    assert code == 2 and "--text file" in err and "corpus.txt" in err and "not UTF-8" in err


@pytest.mark.backend_independent
def test_evaluate_tasks_without_lm_eval_names_the_extra_before_loading_the_model(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lm_eval" else real_find_spec(name, *a))
    code, err = run_cli("evaluate", tmp_path / "absent.keras", "--tasks", "arc_easy")
    assert code == 2 and "pip install 'keras-dualobj[eval]'" in err and "absent.keras" not in err


@pytest.mark.backend_independent
def test_import_is_light_and_a_saved_model_loads_after_it(tmp_path):
    code, out, err = run_python(
        f"import sys, keras_dualobj; print([name for name in {HEAVY} if name in sys.modules])",
        tmp_path,
    )
    assert code == 0 and out.strip() == "[]", err
    path = tmp_path / "tiny.keras"
    tiny_dual_lm(byte_backbone(), tokenizer=ByteTokenizer()).save(path)
    # Keras first, then the package: Keras' own loader finds every class; ours checks the file.
    code, out, err = run_python(f"""
import keras
import keras_dualobj
print(type(keras.saving.load_model({str(path)!r})).__name__)
print(type(keras_dualobj.load_model({str(path)!r}).tokenizer).__name__)
""", tmp_path)
    assert code == 0 and out.split() == ["DualLM", "ByteTokenizer"], err


def test_fit_on_strings_without_a_tokenizer_says_strings_need_one():
    model = tiny_dual_lm()
    with pytest.raises(ValueError, match=r"Strings need a tokenizer, and this model has none.*8 strings"):
        model.fit(["some text"] * 8, epochs=1, verbose=0)


def test_a_string_longer_than_a_row_is_named_before_training():
    model = tiny_dual_lm(byte_backbone(), tokenizer=ByteTokenizer())
    length = model.preprocessor.sequence_length
    strings = ["short"] * 3 + ["x" * (2 * length)]
    with pytest.raises(ValueError, match=rf"^String 3 is {2 * length + 1} tokens with <s>, "
                                         rf"longer than sequence_length={length}"):
        model.fit(strings, epochs=1, verbose=0)
    # In a tf.data pipeline the same check fails inside TensorFlow: its message comes out.
    dataset = tf.data.Dataset.from_tensor_slices(np.array(strings)).batch(2)
    with pytest.raises(ValueError, match=r"^In the input pipeline: a string is longer than "
                                         rf"sequence_length={length}"):
        model.fit(dataset, epochs=1, verbose=0)
