"""The package's import graph: no cycles among vas_ros modules, and the layers hold.

Every module under vas_ros/ is parsed with `ast` (nothing is imported), and every
`import vas_ros...` and `from vas_ros... import ...` (also relative ones) is collected,
at module top level and inside functions and methods alike: a lazy import is still a
dependency, and a cycle hidden in a function body is still a cycle. Not counted:
imports under `if TYPE_CHECKING:` (annotations only, never executed), and
`importlib.import_module('...')` calls, which are plug-in discovery (the model registry
loads the family modules by name), not a dependency of the module that makes them.
Generated ROS interface modules (`vas_ros.msg`, `vas_ros.action`) are not in the source
tree and so not in the graph.

`from pkg import name` depends on `pkg.name` when that is a module, else on `pkg`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / 'vas_ros'

# (importing layer, layers it must not import). A layer is a module prefix.
FORBIDDEN = [
    ('vas_ros.models', ('vas_ros.search', 'vas_ros.data', 'vas_ros.perception',
                        'vas_ros.nodes', 'vas_ros.commands', 'vas_ros.training',
                        'vas_ros.harness')),
    ('vas_ros.search', ('vas_ros.perception', 'vas_ros.nodes', 'vas_ros.commands',
                        'vas_ros.harness')),
    ('vas_ros.perception', ('vas_ros.nodes', 'vas_ros.commands', 'vas_ros.harness')),
    # The runtime nodes never need the test/benchmark harness that drives them.
    ('vas_ros.nodes', ('vas_ros.commands', 'vas_ros.harness')),
]
# Only the CLI and the commands themselves import vas_ros.commands.
COMMANDS, COMMAND_USERS = 'vas_ros.commands', ('vas_ros.commands', 'vas_ros.cli')


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + '.')


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob('*.py'))
            if '__pycache__' not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom in the tree, except in `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The vas_ros modules `name` (at `path`) imports, top level and lazily."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ''
            targets = [f'{source}.{alias.name}' if f'{source}.{alias.name}' in known
                       else source for alias in node.names]
        found.update(t for t in targets if _within(t, 'vas_ros') and t in known)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete loop through a component, for the failure message: a -> b -> a."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & members)
        back = [m for m in nxt if m == start]
        if back and len(path) > 1:
            return ' -> '.join(path + [start])
        fresh = [m for m in nxt if m not in seen]
        if not fresh:
            return ' -> '.join(path + [nxt[0]]) if nxt else ' <-> '.join(component)
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_graph_sees_lazy_and_relative_imports_but_not_type_checking(tmp_path):
    """The collector itself: lazy imports count, TYPE_CHECKING and importlib do not."""
    source = ('from typing import TYPE_CHECKING\n'
              'import importlib\n'
              'from vas_ros.errors import VasError\n'
              'from . import store\n'
              'if TYPE_CHECKING:\n'
              '    from vas_ros.nodes.common import config_dir\n'
              'def f():\n'
              '    from vas_ros.models import registry\n'
              '    importlib.import_module("vas_ros.commands.run")\n')
    path = tmp_path / 'mod.py'
    path.write_text(source)
    known = {'vas_ros.errors', 'vas_ros.search.store', 'vas_ros.nodes.common',
             'vas_ros.models', 'vas_ros.models.registry', 'vas_ros.commands.run'}
    assert _imports('vas_ros.search.mod', path, known) == {
        'vas_ros.errors', 'vas_ros.search.store', 'vas_ros.models.registry'}
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert _cycle_path({'a': {'b'}, 'b': {'a'}}, ['a', 'b']) == 'a -> b -> a'


def test_no_import_cycles_among_vas_ros_modules():
    graph = _graph()
    cycles = list(_cycles(graph))
    assert not cycles, 'import cycles (module granularity, lazy imports included):\n' + \
        '\n'.join(_cycle_path(graph, c) for c in cycles)


def test_layers_import_only_downwards():
    problems = []
    for module, targets in sorted(_graph().items()):
        for target in sorted(targets):
            for layer, forbidden in FORBIDDEN:
                if _within(module, layer) and any(_within(target, f) for f in forbidden):
                    problems.append(f'{module} imports {target}')
            if _within(target, COMMANDS) and not any(_within(module, u)
                                                      for u in COMMAND_USERS):
                problems.append(f'{module} imports {target} (only the CLI may)')
    assert not problems, 'layer violations:\n' + '\n'.join(problems)
