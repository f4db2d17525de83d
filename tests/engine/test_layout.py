"""The engine's layout, read from its source (an AST walk, nothing imported): no import
cycles, the extension zip leaves out only what the runtime never imports, models/ holds
nn.Modules that need nothing of the mesh side.

Every import counts, at module level or inside a function: a lazy import is still a
dependency, so a cycle hidden by one is still a cycle.
"""

import ast
import tomllib
from pathlib import Path

import pytest

from engine.cli import SUBCOMMANDS
from import_graph import cycles

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"
# What the add-on runs: `python -m engine serve` and the commands a user of the zip may call.
RUNTIME_COMMANDS = ("generate", "restyle", "morph", "serve", "doctor")
DEVELOPMENT_COMMANDS = ("bench", "dataset", "train", "eval")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts}


def _targets(module: str, path: Path, node) -> list[str]:
    """The engine modules an import statement names (a package's submodule when
    `from package import name` names one, else the package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1] if node.level else []
    base = ".".join(base + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _known(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """Engine modules `module` imports anywhere in its file (not its own parents, which
    Python imports first anyway)."""
    path = MODULES[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {_known(t) for t in _targets(module, path, node)}
    parents = {module.rsplit(".", k)[0] for k in range(1, module.count(".") + 1)}
    return found - parents - {None, module}


GRAPH = {m: imports(m) for m in MODULES}


def closure(starts) -> set[str]:
    """The modules `starts` import, directly or not, with their packages' __init__."""
    seen, todo = set(), list(starts)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += GRAPH[m]
            todo += [m.rsplit(".", k)[0] for k in range(1, m.count(".") + 1)]
    return seen


def excluded(module: str) -> bool:
    """Does the zip leave the module's file out? (The manifest's anchored patterns:
    a folder "/a/b/" or a file "/a/b.py".)"""
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    rel = "/" + MODULES[module].relative_to(ROOT).as_posix()
    return any(rel.startswith(p) if p.endswith("/") else rel == p
               for p in manifest["build"]["paths_exclude_pattern"] if p.startswith("/"))


def test_the_graph_sees_the_engine():
    assert {"engine.pipeline", "engine.server", "engine.geometry.surface"} <= set(MODULES)
    assert "engine.geometry.surface" in GRAPH["engine.render.tracer"]
    assert "engine.render.thumbnail" in GRAPH["engine.prompt_list"]        # a lazy import


def test_no_import_cycles():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("command", RUNTIME_COMMANDS)
def test_the_zip_carries_everything_a_runtime_command_imports(command):
    module = SUBCOMMANDS[command][0]
    left_out = sorted(m for m in closure([module, "engine.__main__"]) if excluded(m))
    assert not left_out, f"{command} imports {left_out}, which the zip leaves out"


@pytest.mark.parametrize("command", DEVELOPMENT_COMMANDS)
def test_the_zip_leaves_out_the_development_commands(command):
    assert excluded(SUBCOMMANDS[command][0])


def test_the_zip_leaves_out_training_evaluation_and_benchmarks():
    for package in ("engine.data", "engine.train", "engine.evaluation", "engine.bench"):
        assert all(excluded(m) for m in MODULES if m == package or m.startswith(package + "."))
    assert "engine.testing" not in MODULES                 # test fixtures live under tests/


def test_models_import_only_models_config_and_errors():
    for module in (m for m in MODULES if m.startswith("engine.models")):
        outside = {m for m in GRAPH[module]
                   if not m.startswith("engine.models") and m not in ("engine.config",
                                                                     "engine.errors")}
        assert not outside, f"{module} imports {sorted(outside)}"
