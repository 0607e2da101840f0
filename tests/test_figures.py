"""docs/figures.py: the main job's figures in the docs are rendered from a recorded run.

No training here: the rendering is checked on a given console and summary, and the
committed pages against the committed record (`docs/figures.json`).
"""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT

# File formats and text only: no model code (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

_SPEC = importlib.util.spec_from_file_location("figures", REPO_ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(figures)

CONSOLE = """[keras_dualobj.data] corpus source: builtin
[keras_dualobj.train] preset small: 861,312 parameters
step  10/128   8% |  11.2k tok/s | loss 3.734
step  20/128  16% |  11.1k tok/s | loss 2.845
  held-out at step 20: AR loss 2.377  MD loss (ELBO) 2.702
step  30/128  23% |  10.6k tok/s | loss 2.791
  held-out at step 30: AR loss 2.100  MD loss (ELBO) 2.500
step 128/128 100% |   5.6k tok/s | loss 2.107
  held-out at step 128: AR loss 1.654  MD loss (ELBO) 2.209

=== Summary ===
(what the console printed here is replaced by the summary's own formatting)
"""
SUMMARY = {
    "output_dir": "runs/small", "preset": "small", "parameters": {"total": 861_312},
    "corpus": "builtin (CPython's pydoc_data.topics)", "plan": "repetition plan: R = 2",
    "total_steps": 128, "steps_done": 128, "resumed_from_step": 0,
    "held_out": {"ar_loss": 1.6543, "md_loss": 2.2094}, "tokens_per_second": 7558.3,
    "wall_seconds": 113.8,
    "samples": {"AR (top-k)": {"prompt": "<s> class", "completion": " Counter"}},
    "model": "runs/small/model.keras",
}
BLOCK = """
```text
[keras_dualobj.data] corpus source: builtin
[keras_dualobj.train] preset small: 861,312 parameters
step  10/128   8% |  11.2k tok/s | loss 3.734
step  20/128  16% |  11.1k tok/s | loss 2.845
  held-out at step 20: AR loss 2.377  MD loss (ELBO) 2.702
step 128/128 100% |   5.6k tok/s | loss 2.107
  held-out at step 128: AR loss 1.654  MD loss (ELBO) 2.209

=== Summary ===
run         runs/small (preset small, 861,312 parameters)
data        builtin (CPython's pydoc_data.topics)
plan        repetition plan: R = 2
held-out    AR loss 1.654 nats/token (perplexity 5.23) | MD loss (ELBO bound) 2.209 nats/token
speed       7,558 tokens/s training
wall time   114 s
sample AR (top-k):
  prompt      '<s> class'
  completion  ' Counter'
model       runs/small/model.keras (+ tokenizer/, logs/, checkpoints/)
```
"""


def test_a_console_and_a_summary_render_as_the_docs_block():
    assert figures.main_job_block(CONSOLE, SUMMARY) == BLOCK
    record = {"main_job": {"command": ["keras-dualobj", "train", "--preset", "small",
                                       "--output-dir", "runs/small", "--threads", "1"],
                           "console": CONSOLE, "summary": SUMMARY, "seconds": 121.4}}
    rendered = figures.render(record)
    assert rendered["main-job-seconds"] == "121 s for `keras-dualobj train --threads 1`"
    page = "a <!-- figures:main-job-seconds -->9 s<!-- /figures:main-job-seconds --> b"
    assert figures.rewrite(page, rendered) == (
        "a <!-- figures:main-job-seconds -->121 s for `keras-dualobj train --threads 1`"
        "<!-- /figures:main-job-seconds --> b"
    )
    with pytest.raises(ValueError, match=r"marks figures \['nope'\]"):
        figures.rewrite("<!-- figures:nope -->1<!-- /figures:nope -->", rendered)


def test_the_pages_quote_the_recorded_run():
    record = json.loads(figures.RECORD.read_text(encoding="utf-8"))
    rendered = figures.render(record)
    for page in figures.PAGES:
        text = page.read_text(encoding="utf-8")
        assert sorted(name for name, _ in figures.MARKED.findall(text)) == sorted(rendered)
        assert figures.rewrite(text, rendered, page.name) == text, (
            f"{page.name} differs from docs/figures.json: run `python docs/figures.py "
            "--from-record` (or `python docs/figures.py` to run the main job again)"
        )
