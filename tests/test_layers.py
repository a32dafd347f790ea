"""Layering runs one way (issue 12): modules -> model/data -> {train, coding, evaluation} -> CLIs.

Parses every project file's imports (ast, nothing is imported) and checks that the import graph between files has
no cycle and no upward import: modules/ imports only modules/ and sync_batchnorm/; library code (modules, coding,
evaluation, frames_dataset, logger) never imports a script (run, train, reconstruction, codec); coding/ never
imports evaluation/; frames_dataset never imports tools/.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {'tests', 'data', 'out', 'log', 'checkpoints', 'docs'}
SCRIPTS = {'run', 'train', 'reconstruction', 'codec'}
LIBRARY = {'modules', 'coding', 'evaluation', 'frames_dataset', 'logger'}


def project_modules():
    """Dotted module name -> file, for every .py file of the project (packages by their folder name)."""
    found = {}
    for path in ROOT.rglob('*.py'):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith('.') for part in parts) or parts[0] in SKIPPED:
            continue
        name = '.'.join(parts)[:-3]
        found[name.removesuffix('.__init__')] = path
    return found


def imported_names(path, module):
    """Absolute dotted names a file imports (relative imports resolved; 'from a import b' gives a and a.b)."""
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1] if package else []
                base = '.'.join(anchor + ([base] if base else []))
            yield base
            yield from (f'{base}.{alias.name}' for alias in node.names)


def import_graph():
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module):
            while name and name not in modules:        # a.b.func -> a.b; third-party names vanish
                name = name.rpartition('.')[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search, white/grey/black)."""
    state, trail = {}, []

    def visit(node):
        state[node] = 'open'
        trail.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        trail.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def upward_imports(graph):
    top = lambda name: name.split('.')[0]  # noqa: E731
    bad = []
    for source, targets in graph.items():
        for target in targets:
            if top(source) in LIBRARY and target in SCRIPTS:
                bad.append(f'{source} imports the script {target}')
            if top(source) == 'coding' and top(target) == 'evaluation':
                bad.append(f'{source} imports {target}')
            if source == 'frames_dataset' and top(target) == 'tools':
                bad.append(f'{source} imports {target}')
            if top(source) == 'modules' and top(target) not in ('modules', 'sync_batchnorm'):
                bad.append(f'{source} imports {target}')
    return sorted(bad)


def test_the_graph_is_read():
    graph = import_graph()
    assert {'modules.render', 'coding.codec', 'evaluation.rd', 'video_io', 'codec'} <= set(graph)
    assert 'modules.render' in graph['coding.codec'] and 'video_io' in graph['frames_dataset']


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_upward_import():
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert upward_imports({'coding.demo': {'evaluation.metrics'}, 'evaluation.rd': {'reconstruction'}}) == [
        'coding.demo imports evaluation.metrics', 'evaluation.rd imports the script reconstruction']
