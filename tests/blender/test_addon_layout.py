"""The add-on's module structure, read with ast (no Blender needed): no import cycles,
operators/ holds only Operator classes, the runtime package stands on its own, and no
subprocess is in reach of a panel's draw() or an operator's poll().

Every import counts, at module level or inside a function: a lazy import still ties two
modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import cycles

ROOT = Path(__file__).resolve().parents[2]

NOT_ADDON = {"engine", "tests", "scripts", "docs", "mk", "weights", "out", "dist", "data"}


def addon_files() -> list[Path]:
    """The add-on's own Python files (the engine is a package of its own)."""
    return sorted(p for p in ROOT.rglob("*.py")
                  if p.relative_to(ROOT).parts[0] not in NOT_ADDON
                  and not p.relative_to(ROOT).parts[0].startswith(".")
                  and "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    """"runtime.session", "operators" (a package), "" (the add-on's own __init__)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """The absolute dotted names `path` imports; `from P import x` gives "P.x", which
    import_graph resolves to the submodule P.x when there is one, else to P."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [f"{module}.{alias.name}".lstrip(".") for alias in node.names]
    return found


def import_graph(files) -> dict[str, set[str]]:
    names = {module_name(p): p for p in files}
    graph = {}
    for name, path in names.items():
        edges = set()
        for target in imports(path):
            while target and target not in names:      # a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def test_the_import_graph_sees_relative_imports():
    graph = import_graph(addon_files())
    assert {"runtime.session", "runtime.paths"} <= graph["operators.generate"]
    assert {"runtime.history", "runtime.paths"} <= graph["runtime.session"]
    assert "runtime" not in graph["runtime.session"]      # `from . import x` is x


def test_no_import_cycles_in_the_addon():
    graph = import_graph(addon_files())
    assert {"runtime", "runtime.session", "operators", "panels", "preferences"} <= set(graph)
    assert cycles(graph) == []


def test_the_runtime_imports_none_of_the_addons_blender_classes():
    """Not operators/, panels/, preferences.py (which imports the runtime) nor props.py."""
    graph = import_graph(addon_files())
    runtime = [name for name in graph if name == "runtime" or name.startswith("runtime.")]
    assert len(runtime) >= 8, runtime
    for name in runtime:
        bad = {t for t in graph[name] if t.split(".")[0] in {"operators", "panels"}
               or t in {"preferences", "props"}}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_operators_hold_only_operator_classes():
    classes = []
    for path in sorted((ROOT / "operators").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert bases == ["bpy.types.Operator"], \
                    f"operators/{path.name}: class {node.name}({', '.join(bases)})"
                classes.append(node.name)
    assert len(classes) >= 15 and all(c.startswith("KILN_OT_") for c in classes), classes


def test_only_the_discovery_and_the_setup_worker_run_subprocesses():
    """A panel's draw() and an operator's poll() cannot reach a subprocess: only the
    search for the engine's Python (a background thread) and the setup worker (a
    thread) import subprocess on the Blender side; engine/client.py starts the engine."""
    users = sorted(module_name(p) for p in addon_files()
                   if any(t == "subprocess" or t.startswith("subprocess.")
                          for t in imports(p)))
    assert users == ["runtime.discovery", "runtime.engine_setup"], users


def test_the_discovery_is_standard_library_only():
    """runtime/discovery.py imports no bpy and nothing relative, so it loads on its own
    (tests/blender/test_runtime_discovery.py loads it without Blender)."""
    path = ROOT / "runtime" / "discovery.py"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("bpy"), \
                ast.unparse(node)
        elif isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "bpy" for a in node.names), \
                ast.unparse(node)
