"""The self-contained Python blocks of the README and docs/ run as a reader pastes them.

The Set-up commands are what `.ci/run` runs. Of the Python blocks, those that start with
their imports and name no placeholder path (`path/to/...`) are self-contained: they run
here, on every backend, each in a fresh folder (keras-hub style writes `my_preset/`). The
others continue a session (`model`, `prompts` from a block before) or need a checkpoint
a reader supplies.
"""

import re

import pytest

from conftest import REPO_ROOT

PAGES = ["README.md", *sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").glob("*.md"))]


def python_blocks(page):
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def self_contained(block):
    return block.startswith(("import ", "from ")) and "path/to/" not in block


RUNNABLE = [
    pytest.param(block, id=f"{page}-{index}")
    for page in PAGES
    for index, block in enumerate(python_blocks(page))
    if self_contained(block)
]


@pytest.mark.backend_independent
def test_the_first_screens_are_self_contained():
    # Quick start and keras-hub style: a newcomer's first two blocks run as they stand.
    readme = python_blocks("README.md")
    assert len(readme) == 2 and all(self_contained(block) for block in readme)
    assert len(RUNNABLE) >= 3  # and the recipe in docs/training.md


@pytest.mark.parametrize("block", RUNNABLE)
def test_documented_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "documented block", "exec"), {"__name__": "__documented__"})
