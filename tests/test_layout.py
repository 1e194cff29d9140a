"""The house rules of README's "Where things are", checked on the code itself.

import-linter's contracts (pyproject.toml) hold the import rules: floors, Telethon at the
edges, no database driver outside storage, storage independent of bot, detection pure.
The rest (SQL text, circles, loose modules, docstrings) is checked here over the tree.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|WITH|BEGIN|COMMIT|VACUUM)\b"
)
MAX_LOOSE = 8


def _sources(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (ROOT / part).rglob("*.py"))


def _string_parts(tree: ast.AST) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add((node.lineno, first.value))
    return found


def sql_outside_storage(paths: list[Path], root: Path = ROOT) -> list[str]:
    """`file:line` of every string that starts like an SQL statement."""
    hits = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, text in sorted(_string_parts(tree)):
            if SQL.match(text):
                hits.append(f"{path.relative_to(root)}:{line}")
    return hits


def import_circles(graph: grimp.ImportGraph, modules: set[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) where a imports b and b leads back to a (type-checking imports count)."""
    circles = []
    for module in sorted(modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if graph.chain_exists(importer=imported, imported=module):
                circles.append((module, imported))
    return circles


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (pip install -e '.[dev]')"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_sql_outside_storage() -> None:
    assert sql_outside_storage(_sources("bot", "config")) == []


def test_the_sql_check_sees_plain_and_formatted_statements(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        'A = "SELECT 1"\nB = f"""\n  UPDATE posts SET x = {1}"""\nC = "Select a channel"\n',
        encoding="utf-8",
    )
    assert sql_outside_storage([planted], root=tmp_path) == ["planted.py:1", "planted.py:2"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("bot", "storage", "config", exclude_type_checking_imports=False)


def test_the_circle_check_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "circled"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from circled import b\n", encoding="utf-8")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circled import a\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    planted = grimp.build_graph("circled", exclude_type_checking_imports=False, cache_dir=None)
    assert import_circles(planted, {"circled.a", "circled.b"}) == [
        ("circled.a", "circled.b"),
        ("circled.b", "circled.a"),
    ]


def test_no_import_circles(graph: grimp.ImportGraph) -> None:
    modules = {m for m in graph.modules if m.split(".")[0] in {"bot", "storage", "config"}}
    # A package's __init__ importing its own modules is how packages export; not a circle.
    circles = [
        (a, b) for a, b in import_circles(graph, modules) if not _package_export(graph, a, b)
    ]
    assert circles == []


def _package_export(graph: grimp.ImportGraph, a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_at_most_eight_modules_loose_in_bot() -> None:
    loose = sorted(p.name for p in (ROOT / "bot").glob("*.py"))
    assert len(loose) <= MAX_LOOSE, loose


@pytest.mark.parametrize(
    "folder", sorted(p.parent.name for p in (ROOT / "bot").glob("*/__init__.py"))
)
def test_every_part_says_what_it_owns(folder: str) -> None:
    tree = ast.parse((ROOT / "bot" / folder / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc and len(doc.split()) >= 8, f"bot/{folder}/__init__.py needs a docstring"
