"""Every guide runs to the end, as a reader runs it: its notebook, in a Jupyter kernel.

The notebook in guides/ipynb/ holds exactly the guide's code (tests/test_guide_notebooks.py
checks that), so running the notebook also runs the guide. Each runs once per run of the
README's test command, in the pass of the backend it is assigned to here (an end-to-end
test, tests/conftest.py); the library code they use is tested on all three backends by the
other tests. A new guide must be given a backend below, keeping the passes balanced.

The kernel is this interpreter's ipykernel, started in a temporary folder with
KERAS_BACKEND set, the checkout first on PYTHONPATH and no local TFDS copy, so every
guide runs on data it makes or on the built-in corpus (never ../shared, never a
download).
"""

import ast
import os
import sys

import keras
import nbclient
import nbformat
import pytest
from jupyter_client.manager import KernelManager

from conftest import BACKENDS
from conftest import REPO_ROOT
from conftest import one_thread_environment

# `same_code_three_backends` runs all three backends itself, in subprocesses.
GUIDE_BACKENDS = {
    "add_a_diffusion_face": "torch",
    "dual_objective_basics": "torch",
    "evaluate_like_the_papers": "torch",
    "fast_decoding": "tensorflow",
    "generation_and_evaluation": "tensorflow",
    "released_models": "torch",
    "repetition_study": "torch",
    "same_code_three_backends": "tensorflow",
    "training_at_scale": "jax",
    "training_recipe": "torch",
}
NOTEBOOKS_DIR = REPO_ROOT / "guides" / "ipynb"
NOTEBOOKS = sorted(path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb"))
GUIDE_PARAMETERS = [
    pytest.param(name, marks=pytest.mark.end_to_end(GUIDE_BACKENDS[name]))
    for name in NOTEBOOKS
    if name in GUIDE_BACKENDS  # a guide without one fails test_every_guide_has_a_backend
]
CELL_TIMEOUT_SECONDS = 600
# Guides that need one backend set it themselves; every other guide leaves the choice to
# Keras ($KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow, which every install has).
REQUIRED_BACKENDS = {"training_at_scale": "jax"}  # keras.distribution runs on JAX only


@pytest.mark.backend_independent
def test_every_guide_has_a_backend():
    assert sorted(GUIDE_BACKENDS) == NOTEBOOKS
    assert set(GUIDE_BACKENDS.values()) == set(BACKENDS)


def kernel_environment():
    environment = one_thread_environment(
        KERAS_BACKEND=keras.backend.backend(),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
    )
    environment.pop("KERAS_DUALOBJ_TFDS_LOCAL_COPY", None)
    return environment


def run_notebook(notebook, working_directory):
    """Executes `notebook` (a NotebookNode, filled in place) in a fresh kernel."""
    kernel_manager = KernelManager(kernel_name="python3")
    # The installed kernelspec may name a bare `python`; run this interpreter's ipykernel.
    kernel_manager.kernel_spec.argv[0] = sys.executable
    client = nbclient.NotebookClient(
        notebook,
        km=kernel_manager,
        timeout=CELL_TIMEOUT_SECONDS,
        startup_timeout=180,
        resources={"metadata": {"path": str(working_directory)}},
    )
    try:
        client.execute(env=kernel_environment(), cleanup_kc=True)
    finally:
        # nbclient shuts down only kernels it started itself; this one is ours.
        if kernel_manager.has_kernel:
            kernel_manager.shutdown_kernel(now=True)


def cell_text(cell):
    return "".join(
        output.get("text", "") for output in cell.get("outputs", []) if output.get("name") == "stdout"
    )


@pytest.mark.parametrize("name", GUIDE_PARAMETERS)
def test_guide_notebook_runs(name, tmp_path):
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    run_notebook(notebook, tmp_path)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    printed = "".join(cell_text(cell) for cell in code_cells)
    assert printed.strip(), f"the {name} notebook printed nothing"
    assert not any(
        output.get("output_type") == "error" for cell in code_cells for output in cell.outputs
    )


@pytest.mark.backend_independent
def test_the_kernel_gets_the_environment_and_errors_fail_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DUALOBJ_TFDS_LOCAL_COPY", "/nowhere/input.txt")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import os, sys\n"
            "print(os.environ['KERAS_BACKEND'], os.getcwd(), sys.executable)\n"
            "print('KERAS_DUALOBJ_TFDS_LOCAL_COPY' in os.environ)"
        ),
        nbformat.v4.new_code_cell("raise ValueError('the guide broke')"),
        nbformat.v4.new_code_cell("print('never runs')"),
    ]
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="the guide broke"):
        run_notebook(notebook, tmp_path)
    assert cell_text(notebook.cells[0]).split() == [
        keras.backend.backend(), str(tmp_path), sys.executable, "False"
    ]
    assert notebook.cells[2].outputs == []


def backends_set(source):
    """The values `source` gives KERAS_BACKEND: `os.environ[...] = v` or `.setdefault(..., v)`."""
    values = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "setdefault":
            targets, value = [node], node.args[1] if len(node.args) == 2 else None
        else:
            continue
        for target in targets:
            key = target.slice if isinstance(target, ast.Subscript) else None
            if isinstance(target, ast.Call):
                key = target.args[0] if target.args else None
            if isinstance(key, ast.Constant) and key.value == "KERAS_BACKEND":
                text = value.value if isinstance(value, ast.Constant) else ast.unparse(value)
                values.append((node.lineno, text))
    return [text for _, text in sorted(values)]


@pytest.mark.backend_independent
@pytest.mark.parametrize("name", sorted(GUIDE_BACKENDS))
def test_guides_run_on_the_backend_keras_picks(name):
    guide = (REPO_ROOT / "guides" / f"{name}.py").read_text(encoding="utf-8")
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    cells = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    expected = [REQUIRED_BACKENDS[name]] if name in REQUIRED_BACKENDS else []
    for where, source in ((f"guides/{name}.py", guide), (f"guides/ipynb/{name}.ipynb", cells)):
        # A default other than Keras' own fails at import for a reader without that backend.
        assert backends_set(source) == expected, (
            f"{where} sets KERAS_BACKEND to {backends_set(source)}; a guide leaves the "
            f"backend to Keras unless it needs one (REQUIRED_BACKENDS: {REQUIRED_BACKENDS})."
        )
    assert GUIDE_BACKENDS[name] == REQUIRED_BACKENDS.get(name, GUIDE_BACKENDS[name])


@pytest.mark.backend_independent
def test_backends_set_finds_defaults_and_assignments():
    source = (
        'import os\nos.environ.setdefault("KERAS_BACKEND", "jax")\n'
        'os.environ["KERAS_BACKEND"] = "torch"\nenv = {**os.environ, "KERAS_BACKEND": b}\n'
        'os.environ.setdefault("OTHER", "x")\n'
    )
    assert backends_set(source) == ["jax", "torch"]


def multiple_choice_normalizations(source):
    """The length normalizations of the Python and the CLI multiple-choice calls in `source`."""
    python, cli = [], []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if getattr(node.func, "attr", None) == "evaluate_multiple_choice":
            given = {keyword.arg: keyword.value for keyword in node.keywords}
            value = given.get("length_normalization")
            python.append("none" if value is None else ast.literal_eval(value))
        for argument in node.args:
            words = [getattr(item, "value", None) for item in getattr(argument, "elts", [])]
            if "--multiple-choice" in words:
                flag = "--length-normalization"
                cli.append(words[words.index(flag) + 1] if flag in words else "none")
    return python, cli


@pytest.mark.backend_independent
@pytest.mark.parametrize("name", sorted(GUIDE_BACKENDS))
def test_python_and_cli_multiple_choice_agree_in_a_guide(name):
    source = (REPO_ROOT / "guides" / f"{name}.py").read_text(encoding="utf-8")
    python, cli = multiple_choice_normalizations(source)
    # A guide that scores multiple choice both ways shows the same numbers both ways.
    assert len(set(python + cli)) <= 1, (
        f"guides/{name}.py normalizes multiple choice by {python} in Python and {cli} on "
        "the command line"
    )
