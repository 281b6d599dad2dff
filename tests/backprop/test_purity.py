"""backprop/ imports numpy, pydantic and the standard library only, and no I/O module."""

import ast
import sys
from pathlib import Path

import backprop

ALLOWED = {"numpy", "pydantic", "backprop", "__future__"}
IO_MODULES = {
    "io",
    "os",
    "pathlib",
    "logging",
    "socket",
    "sqlite3",
    "subprocess",
    "shutil",
    "tempfile",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_imports_nothing_else():
    files = sorted(Path(backprop.__file__).parent.glob("*.py"))
    assert len(files) >= 9
    for path in files:
        roots = _imported_roots(path)
        outside = roots - ALLOWED - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {outside}"
        assert not roots & IO_MODULES, f"{path.name} imports {roots & IO_MODULES}"
