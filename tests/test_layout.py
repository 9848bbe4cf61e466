"""The layers import one way: the core of ``embedding`` needs neither the callbacks, the datamodules nor the
commands; commands that fit nothing start without Lightning."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.robust_run import cli_env

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("callbacks", "datamodules", "embedding.commands")


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module a source file under ``root`` imports, at any depth of its code (relative imports made absolute)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def outward_imports(folder: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``file: module`` for each import of a module under ``forbidden`` by a file under ``folder`` (the command
    layer, ``embedding/commands``, wires everything and is left out)."""
    bad = []
    for path in sorted((root / folder).rglob("*.py")):
        if (root / "embedding" / "commands") in path.parents:
            continue
        for module in sorted(imported_modules(path, root)):
            if any(module == layer or module.startswith(f"{layer}.") for layer in forbidden):
                bad.append(f"{path.relative_to(root)}: {module}")
    return bad


def test_the_core_imports_no_callback_datamodule_or_command():
    assert outward_imports("embedding", LAYERS) == []


def test_callbacks_and_datamodules_import_the_core_not_the_commands():
    assert outward_imports("callbacks", ("datamodules", "embedding.commands")) == []
    assert outward_imports("datamodules", ("callbacks", "embedding.commands")) == []


def test_the_walk_finds_outward_imports_at_any_depth(tmp_path):
    (tmp_path / "embedding" / "commands").mkdir(parents=True)
    (tmp_path / "embedding" / "fitting").mkdir()
    (tmp_path / "embedding" / "fitting" / "late.py").write_text("def f():\n    from callbacks import writer\n")
    (tmp_path / "embedding" / "fitting" / "up.py").write_text("from ..commands import fit\n")
    (tmp_path / "embedding" / "commands" / "fit.py").write_text("import datamodules\n")
    assert outward_imports("embedding", LAYERS, tmp_path) == [
        "embedding/fitting/late.py: callbacks", "embedding/fitting/late.py: callbacks.writer",
        "embedding/fitting/up.py: embedding.commands", "embedding/fitting/up.py: embedding.commands.fit"]


@pytest.mark.parametrize("command", ["edit", "encode", "swap", "align", "convert"])
def test_commands_that_fit_nothing_start_without_lightning(command):
    code = (f"import sys, embedding.commands.{command}; "
            "print(sorted(m for m in ('lightning', 'torchvision', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert out.stdout.strip() == "[]"
