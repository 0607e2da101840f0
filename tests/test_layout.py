"""The package's layers, as the README draws them: every import points down, and no
modules import each other in a circle (issue 25, item 3).

Read statically (every `import`, at module level or inside a function), so a lazy import
inside a function counts as an arrow too.
"""

import ast
import re

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "keras_dualobj"


def readme_layers():
    """Package name -> row in the README's layout drawing (0 = top)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    drawing = re.search(r"## Layout.*?```text\n(.*?)```", text, flags=re.S).group(1)
    return {name: row for row, line in enumerate(drawing.splitlines()) for name in line.split()}


def module_names():
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_edges():
    """`{module: {imported module}}` within keras_dualobj."""
    names = module_names()

    def resolve(name):
        while name not in names and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in names else None

    edges = {}
    for module, path in names.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from package import module` imports the module, not the package's names.
                targets.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in names
                               else node.module for alias in node.names)
        edges[module] = {resolve(t) for t in targets if t.startswith("keras_dualobj")} - {None, module}
    return edges


def package_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def circles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while not component or node not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.mark.backend_independent
def test_every_import_points_down_the_readme_layers():
    layers = readme_layers()
    upward = []
    for module, targets in import_edges().items():
        source = package_of(module)
        if source in (None, "__main__"):  # the package's own entry points sit above all
            continue
        assert source in layers, f"package {source} is missing from the README's layout"
        for target in targets:
            destination = package_of(target)
            if destination != source and not layers[destination] > layers[source]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


@pytest.mark.backend_independent
def test_no_modules_import_each_other_in_a_circle():
    edges = {module: targets for module, targets in import_edges().items() if package_of(module)}
    assert circles(edges) == []
