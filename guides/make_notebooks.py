"""Writes `guides/ipynb/<name>.ipynb` from every tutobook guide `guides/<name>.py`.

    python guides/make_notebooks.py           # regenerate every notebook
    python guides/make_notebooks.py --check   # exit 1 and name the stale ones

The notebooks are generated, committed and never edited by hand: edit the guide and
run this script. The conversion follows the keras.io tutobook convention:

- the header docstring (`Title:`, `Author:`, `Date created:`, ...) becomes the first
  markdown cell: the title as a heading, the other fields in bold below it;
- every other top-level string statement (a `\"\"\"` block) becomes a markdown cell;
- the code between two of them becomes one code cell (blank lines around it dropped).

Top-level strings are found with `ast`, so a triple-quoted string inside code (an
assignment, a function's docstring) stays code. The output has no execution counts and
no outputs, numbered cell ids and sorted keys, so regenerating gives the same bytes.
"""

import argparse
import ast
import sys
from pathlib import Path

import nbformat

GUIDES_DIR = Path(__file__).resolve().parent
NOTEBOOKS_DIR = GUIDES_DIR / "ipynb"
REGENERATE_COMMAND = "python guides/make_notebooks.py"
HEADER_FIELDS = ("Title", "Author", "Date created", "Last modified", "Description")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def is_tutobook(source):
    """Whether `source` starts with a tutobook header docstring (`Title: ...`)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and _string_value(body[0]) is not None and (
        _string_value(body[0]).strip().startswith("Title:")
    )


def guide_paths(guides_dir=GUIDES_DIR):
    """The tutobook guides in `guides_dir`, sorted by name."""
    return sorted(
        path
        for path in Path(guides_dir).glob("*.py")
        if is_tutobook(path.read_text(encoding="utf-8"))
    )


def notebook_path(guide_path):
    """Where the notebook of `guide_path` lives: `ipynb/<name>.ipynb` beside it."""
    guide_path = Path(guide_path)
    return guide_path.parent / "ipynb" / f"{guide_path.stem}.ipynb"


def parse_header(text):
    """The `Key: value` fields of a tutobook header docstring, in order."""
    fields = {}
    for line in text.strip().splitlines():
        key, separator, value = line.partition(":")
        if not separator or not value.strip():
            raise ValueError(f"A tutobook header line must read `Key: value`; got {line!r}.")
        fields[key.strip()] = value.strip()
    missing = [field for field in HEADER_FIELDS if field not in fields]
    if missing:
        raise ValueError(f"The tutobook header lacks {missing}; it has {list(fields)}.")
    return fields


def header_markdown(fields):
    """The first markdown cell: the title, then every other field in bold."""
    lines = [f"**{key}:** {value}<br>" for key, value in fields.items() if key != "Title"]
    lines[-1] = lines[-1].removesuffix("<br>")
    return f"# {fields['Title']}\n\n" + "\n".join(lines)


def tutobook_cells(source):
    """`(cell_type, text)` pairs of a tutobook guide's source, in order."""
    lines = source.splitlines()
    body = ast.parse(source).body
    if not body or _string_value(body[0]) is None:
        raise ValueError("A tutobook guide starts with its header docstring.")
    cells = [("markdown", header_markdown(parse_header(_string_value(body[0]))))]
    code_start = body[0].end_lineno
    for statement in body[1:]:
        text = _string_value(statement)
        if text is None:
            continue
        cells.append(("code", "\n".join(lines[code_start : statement.lineno - 1])))
        cells.append(("markdown", text))
        code_start = statement.end_lineno
    cells.append(("code", "\n".join(lines[code_start:])))
    cells = [(kind, text.strip("\n").rstrip()) for kind, text in cells]
    return [(kind, text) for kind, text in cells if text.strip()]


def notebook_text(source):
    """The notebook of a tutobook guide's source, as the exact text to write."""
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
        }
    )
    for index, (kind, text) in enumerate(tutobook_cells(source)):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(text, id=f"cell-{index:03d}"))
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def stale_notebooks(guides_dir=GUIDES_DIR):
    """Notebook paths that are missing or differ from what their guide generates."""
    stale = []
    for guide in guide_paths(guides_dir):
        target = notebook_path(guide)
        expected = notebook_text(guide.read_text(encoding="utf-8"))
        if not target.exists() or target.read_text(encoding="utf-8") != expected:
            stale.append(target)
    return stale


def orphan_notebooks(guides_dir=GUIDES_DIR):
    """Notebooks in `ipynb/` whose guide is gone."""
    expected = {notebook_path(guide) for guide in guide_paths(guides_dir)}
    return sorted(set(Path(guides_dir, "ipynb").glob("*.ipynb")) - expected)


def write_notebooks(guides_dir=GUIDES_DIR):
    """Regenerates every notebook and deletes orphans; returns the paths written."""
    written = []
    for guide in guide_paths(guides_dir):
        target = notebook_path(guide)
        target.parent.mkdir(exist_ok=True)
        target.write_text(notebook_text(guide.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(target)
    for orphan in orphan_notebooks(guides_dir):
        orphan.unlink()
    return written


def _string_value(statement):
    """The text of a top-level string statement, else None."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        if isinstance(statement.value.value, str):
            return statement.value.value
    return None


def main(argv=None, guides_dir=GUIDES_DIR):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any notebook is stale"
    )
    arguments = parser.parse_args(argv)
    root = Path(guides_dir).parent
    if arguments.check:
        problems = stale_notebooks(guides_dir) + orphan_notebooks(guides_dir)
        for path in problems:
            print(f"out of date: {path.relative_to(root)}")
        if problems:
            print(f"Regenerate with: {REGENERATE_COMMAND}")
        return 1 if problems else 0
    for path in write_notebooks(guides_dir):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
