"""The committed notebooks in guides/ipynb/ are exactly what guides/make_notebooks.py makes.

The notebooks are executed by tests/test_guides.py; here only the conversion is tested.
"""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT

# Notebook text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

_SPEC = importlib.util.spec_from_file_location(
    "make_notebooks", REPO_ROOT / "guides" / "make_notebooks.py"
)
make_notebooks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_notebooks)

GUIDE = '''"""
Title: A tiny guide
Author: someone
Date created: 2026/01/01
Last modified: 2026/01/02
Description: Shows the cells.
"""

"""
## Setup

Some `text`.
"""

import os

TEMPLATE = """
not markdown
"""


def function():
    """Not markdown either."""
    return 1

"""
A back\\\\slash.
"""
print(function())
'''


def test_every_notebook_is_up_to_date():
    stale = make_notebooks.stale_notebooks() + make_notebooks.orphan_notebooks()
    assert not stale, (
        f"Out of date with their guides: {[str(path) for path in stale]}. "
        f"Regenerate with `{make_notebooks.REGENERATE_COMMAND}`; never edit them by hand."
    )


def test_every_guide_has_a_notebook():
    guides = make_notebooks.guide_paths()
    notebooks = sorted((REPO_ROOT / "guides" / "ipynb").glob("*.ipynb"))
    assert [path.stem for path in guides] == [path.stem for path in notebooks]
    assert "make_notebooks" not in [path.stem for path in guides]


def test_tutobook_cells_follow_the_convention():
    cells = make_notebooks.tutobook_cells(GUIDE)
    assert [kind for kind, _ in cells] == ["markdown", "markdown", "code", "markdown", "code"]
    assert cells[0][1] == (
        "# A tiny guide\n\n**Author:** someone<br>\n**Date created:** 2026/01/01<br>\n"
        "**Last modified:** 2026/01/02<br>\n**Description:** Shows the cells."
    )
    assert cells[1][1] == "## Setup\n\nSome `text`."
    assert cells[2][1].startswith("import os\n\nTEMPLATE = \"\"\"\nnot markdown\n\"\"\"")
    assert cells[2][1].endswith('"""Not markdown either."""\n    return 1')
    assert cells[3][1] == "A back\\slash."
    assert cells[4][1] == "print(function())"


def test_notebook_text_is_stable_and_stripped():
    text = make_notebooks.notebook_text(GUIDE)
    assert text == make_notebooks.notebook_text(GUIDE)
    notebook = json.loads(text)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert [cell["id"] for cell in notebook["cells"]] == [f"cell-{i:03d}" for i in range(5)]
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize(
    "header, message",
    [
        ('"""\nTitle: only a title\n"""\n', "lacks"),
        ('"""\nTitle: t\nno colon here\n"""\n', "Key: value"),
        ("import os\n", "header docstring"),
    ],
)
def test_bad_headers_are_refused(header, message):
    with pytest.raises(ValueError, match=message):
        make_notebooks.tutobook_cells(header)


def test_check_names_the_regenerate_command(tmp_path, capsys):
    (tmp_path / "a_guide.py").write_text(GUIDE)
    (tmp_path / "not_a_guide.py").write_text("print(1)\n")
    assert make_notebooks.main(["--check"], tmp_path) == 1
    assert make_notebooks.REGENERATE_COMMAND in capsys.readouterr().out
    assert make_notebooks.main([], tmp_path) == 0
    assert sorted(path.name for path in (tmp_path / "ipynb").iterdir()) == ["a_guide.ipynb"]
    assert make_notebooks.main(["--check"], tmp_path) == 0
    (tmp_path / "ipynb" / "gone.ipynb").write_text("{}")
    assert make_notebooks.main(["--check"], tmp_path) == 1
    make_notebooks.main([], tmp_path)
    assert not (tmp_path / "ipynb" / "gone.ipynb").exists()
