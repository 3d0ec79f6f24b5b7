"""The package's layout: short modules, and no import cycles between them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import django_taskqueue
from tests.processes import ROOT, django_env

PACKAGE_DIR = Path(django_taskqueue.__file__).resolve().parent
PACKAGE = "django_taskqueue"
MAX_LINES = 400


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool):
    """(module, names) for every import in ``tree``, relative ones resolved; imports
    under ``if TYPE_CHECKING:`` are left out (they never run)."""

    def visit(node: ast.AST):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            yield base, tuple(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(tree)


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, names in imported_names(tree, name, path.name == "__init__.py"):
            if target not in modules:
                continue
            # ``from pkg import sub`` imports the submodule; other names come from
            # the package's (or module's) own namespace.
            submodules = {f"{target}.{n}" for n in names} & modules.keys()
            if submodules:
                graph[name] |= submodules
            if not names or len(submodules) < len(names):
                graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph``: the strongly connected components (Tarjan), and in
    each the shortest cycle through every module of it (without repeats)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    cycles = []
    for component in components:
        found = []
        for start in sorted(component):
            cycle = shortest_cycle(graph, component, start)
            # The same cycle from another start: skip it.
            if not any(set(cycle) == set(other) for other in found):
                found.append(cycle)
        cycles.extend(found)
    return cycles


def shortest_cycle(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """The shortest way from ``start`` back to itself inside ``component``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return [*paths[node], start]
                if succ not in paths:
                    paths[succ] = [*paths[node], succ]
                    next_frontier.append(succ)
        frontier = next_frontier
    raise AssertionError(f"{start} is on no cycle")


def test_no_module_is_long():
    long = {
        name: count
        for name, path in package_modules().items()
        if ".migrations" not in name and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_import_of_the_package_names_one_of_its_modules():
    # An import the graph cannot resolve would be missing from it.
    modules = package_modules()
    unknown = [
        f"{name}: {target}"
        for name, path in modules.items()
        for target, _ in imported_names(
            ast.parse(path.read_text()), name, path.name == "__init__.py"
        )
        if (target == PACKAGE or target.startswith(f"{PACKAGE}.")) and target not in modules
    ]
    assert not unknown, f"imports of modules that do not exist: {unknown}"


def test_the_graph_sees_imports_in_functions_and_relative_ones():
    graph = import_graph()
    # A lazy import inside a function, and a relative one.
    assert "django_taskqueue.conf" in graph["django_taskqueue.apps"]
    assert "django_taskqueue.registry" in graph["django_taskqueue"]


def test_a_module_importing_the_top_package_is_a_cycle():
    # ``from django_taskqueue import enqueue`` in a module the package imports.
    graph = import_graph()
    graph["django_taskqueue.registry"].add("django_taskqueue")
    assert ["django_taskqueue", "django_taskqueue.registry", "django_taskqueue"] in find_cycles(
        graph
    )


def test_find_cycles_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["d", "d"]]


def test_type_checking_imports_are_left_out_and_packages_resolved():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .models import Task\n"
        "else:\n"
        "    from . import conf\n"
        "def f():\n"
        "    from .. import django_taskqueue\n"
        "    import django_taskqueue.db\n"
    )
    found = list(imported_names(tree, "django_taskqueue.worker.coordinator", False))
    assert ("django_taskqueue.worker.models", ("Task",)) not in found
    assert ("django_taskqueue.worker", ("conf",)) in found
    assert ("django_taskqueue", ("django_taskqueue",)) in found
    assert ("django_taskqueue.db", ()) in found


def test_a_spawned_worker_process_can_unpickle_its_entry_point_before_setup():
    # multiprocessing's spawn imports the supervisor's module to find _child, which
    # then calls django.setup(): nothing on the way may import the models.
    proc = subprocess.run(
        [sys.executable, "-c", "import django_taskqueue.worker.supervisor"],
        env=django_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# Generic in django-stubs only: subscripting them at run time needs django-stubs-ext's
# monkeypatch, which the django-tasks backport applies on Django 5.2 and nothing does on 6.0+.
STUBS_ONLY_GENERICS = {
    "ModelAdmin",
    "InlineModelAdmin",
    "StackedInline",
    "TabularInline",
    "Paginator",
}


def test_no_class_subscripts_a_generic_that_exists_in_the_stubs_only():
    found = []
    for name, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Subscript):
                        target = base.value
                        base_name = (
                            target.attr
                            if isinstance(target, ast.Attribute)
                            else getattr(target, "id", "")
                        )
                        if base_name in STUBS_ONLY_GENERICS:
                            found.append(f"{name}.{node.name}")
    assert not found, f"subscripted at run time (TypeError on Django 6): {found}"
