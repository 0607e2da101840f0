"""Shared test fixtures, the tiny-model harness and the rule that shares the suite out.

The suite runs once per Keras backend: `KERAS_BACKEND=tensorflow|jax|torch python -m pytest`
(the README's test command runs all three). Two markers keep the three passes from
repeating each other; `CONTRIBUTING.md` says when to use which:

- `@pytest.mark.backend_independent`: the test runs no model code, Keras op, layer or
  trainer (argument parsing, NumPy maths, file formats, notebook text), so one pass
  suffices: it runs in the `BACKEND_INDEPENDENT_PASS` pass.
- `@pytest.mark.end_to_end("jax")`: a long run (CLI training, a study, kill-and-resume,
  a guide) whose library code the other tests cover on all three backends; it runs in
  the named backend's pass, and the end-to-end runs are spread so each pass carries a share.

On the other backends these tests are *deselected* (never skipped), and the run ends with
one line saying where they run. `--whole-suite` runs every test on the current backend.
"""

import collections
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests compile hundreds of tiny models and decoding loops (JAX, and TensorFlow's
# jit_compile), where XLA's LLVM optimisation costs more time than it saves: level 0
# took a JAX module from 127 s to 98 s with the same results (no fast-math either way).
# First in the list: XLA stops reading at the bare `intra_op_parallelism_threads=N`.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(
        ["--xla_backend_optimization_level=0", *os.environ.get("XLA_FLAGS", "").split()]
    )

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
# The pass that runs the backend-independent tests: the lightest of the three otherwise.
BACKEND_INDEPENDENT_PASS = "torch"


# === Sharing the suite out over the three passes ===


def pytest_configure(config):
    # Under `-n 2` (pytest-xdist) each worker computes on one thread: two workers then
    # fill two cores without the spin-wait collapse of 2 x 2 threads (docs/performance.md).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from keras_dualobj.utils.threads import set_compute_threads

        set_compute_threads(1)


def pytest_addoption(parser):
    parser.addoption(
        "--whole-suite",
        action="store_true",
        help="run every test on this backend, also those the README's command runs "
        "in another backend's pass (backend-independent and end-to-end tests)",
    )


def home_pass(item):
    """The backend whose pass runs `item`, or None when every pass runs it."""
    if item.get_closest_marker("backend_independent"):
        return BACKEND_INDEPENDENT_PASS
    marker = item.get_closest_marker("end_to_end")
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.args[0] not in BACKENDS:
        raise pytest.UsageError(
            f"{item.nodeid}: end_to_end takes one backend of {BACKENDS}, got {marker.args}"
        )
    return marker.args[0]


_ELSEWHERE = pytest.StashKey[collections.Counter]()


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    homes = {item: home_pass(item) for item in items}
    here = (None, backend) if not config.getoption("--whole-suite") else (None, *BACKENDS)
    elsewhere = [item for item in items if homes[item] not in here]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if homes[item] in here]
    config.stash[_ELSEWHERE] = collections.Counter(homes[item] for item in elsewhere)
    # The modules of this pass's end-to-end runs first: under `-n 2` a long run started
    # last would keep one worker busy while the other idles.
    long_modules = {
        getattr(item, "module", None) for item in items if item.get_closest_marker("end_to_end")
    }
    items.sort(key=lambda item: getattr(item, "module", None) not in long_modules)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: tell the controller
        session.config.workeroutput["elsewhere"] = dict(session.config.stash.get(_ELSEWHERE, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    elsewhere = getattr(node, "workeroutput", {}).get("elsewhere")
    if elsewhere is not None:  # every worker collects every test: the same counts
        node.config.stash[_ELSEWHERE] = collections.Counter(elsewhere)


def pytest_terminal_summary(terminalreporter, config):
    elsewhere = config.stash.get(_ELSEWHERE, None)
    if elsewhere:
        where = ", ".join(f"{count} in the {home} pass" for home, count in sorted(elsewhere.items()))
        terminalreporter.write_line(
            f"keras-dualobj: {sum(elsewhere.values())} tests deselected on "
            f"{keras.backend.backend()}: they run {where} of the README's test command "
            f"(--whole-suite runs them here)"
        )


# === Data ===


def prose_text():
    """Real English prose that every CPython installs: the language reference
    (`pydoc_data.topics`, ~465 kB), topics in a fixed order, blank-line separated.
    The tests make their data from it (or generate it); nothing outside the
    checkout and the installed packages is read."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[key].strip() for key in sorted(topics.topics))


@pytest.fixture(scope="session")
def prose_file(tmp_path_factory):
    """`prose_text()` written to a UTF-8 text file."""
    path = tmp_path_factory.mktemp("prose") / "prose.txt"
    path.write_text(prose_text(), encoding="utf-8")
    return path


def one_thread_environment(**overrides):
    """`os.environ` for a child process that runs on one thread, whatever its backend.

    Two processes with two threads each on a 2-core machine spin-wait and run up to 10x
    slower (`docs/performance.md`); every subprocess a test starts takes this.
    """
    from keras_dualobj.utils.threads import thread_environment

    return {**os.environ, **thread_environment(1), **overrides}


# === The tiny-model harness ===

# The one tiny configuration; a test overrides only what it is about.
TINY_BACKBONE = dict(
    vocabulary_size=48,
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
)


def tiny_backbone(**overrides):
    """A `DualBackbone` of `TINY_BACKBONE` with `overrides`."""
    from keras_dualobj import DualBackbone

    return DualBackbone(**{**TINY_BACKBONE, **overrides})


def tiny_dual_lm(backbone=None, seed=0, learning_rate=1e-3, **arguments):
    """A compiled `DualLM` (AdamW) on `backbone` (default `tiny_backbone()`).

    The global seed is set to `seed` before the weights are made, so two calls with the
    same arguments give the same model; `arguments` go to `DualLM` (`ar_fraction`,
    `tokenizer`, ...), and `seed` is also the model's own training seed.
    """
    from keras_dualobj import DualLM

    keras.utils.set_random_seed(seed)
    model = DualLM(tiny_backbone() if backbone is None else backbone, seed=seed, **arguments)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate))
    return model


def tiny_token_ids(batch_size=8, length=16, vocabulary_size=TINY_BACKBONE["vocabulary_size"], seed=0):
    """Random ordinary token ids (no special ids), each row starting with `<s>`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocabulary_size, size=(batch_size, length)).astype("int32")
    token_ids[:, 0] = 1
    return token_ids


@pytest.fixture(scope="session")
def trained_tiny_dual_lm():
    """One `tiny_dual_lm(ar_fraction=0.5)` fitted for 2 epochs of 16 rows, shared by the
    whole session: for tests that read a trained model and do not change it."""
    model = tiny_dual_lm(ar_fraction=0.5)
    model.fit(tiny_token_ids(batch_size=16), batch_size=4, epochs=2, verbose=0)
    return model


@pytest.fixture(autouse=True)
def _fixed_seed():
    keras.utils.set_random_seed(1234)
    yield
