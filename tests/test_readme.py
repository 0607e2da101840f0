"""The README's self-contained Python blocks run as a reader pastes them, on every backend.

The Set-up commands are what `.ci/run` runs. Of the Python blocks, those that start with
their imports and name no placeholder path (`path/to/...`) are self-contained: they run
here, each in a fresh folder (keras-hub style writes `my_preset/`). The others continue a
session (`model`, `prompts` from a block before) or need a checkpoint a reader supplies.
"""

import re

import pytest

from conftest import REPO_ROOT


def python_blocks():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def self_contained(block):
    return block.startswith(("import ", "from ")) and "path/to/" not in block


RUNNABLE = [block for block in python_blocks() if self_contained(block)]


@pytest.mark.backend_independent
def test_the_first_screens_are_self_contained():
    # Quick start, keras-hub style, the training recipe: a newcomer's first blocks.
    assert len(RUNNABLE) == 3, "a new self-contained block: check that it runs here quickly"
    assert python_blocks()[:2] == RUNNABLE[:2]


@pytest.mark.parametrize("block", RUNNABLE, ids=["quick_start", "keras_hub_style", "recipe"])
def test_readme_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
