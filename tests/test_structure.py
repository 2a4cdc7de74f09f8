"""The size limits of docs/design.md: no library module over 300 lines, no function body over 60 lines
unless a comment on its ``def`` line (or the line above) says why it is long.

A function's length is its body's, from the first statement (the docstring included) to the last line:
a Typer command's signature is its option declarations, which do not make the code longer to follow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sapnet_export"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _explained(lines: list[str], node: ast.AST) -> bool:
    """A ``# long: ...`` comment on the ``def`` line, the line above, or the decorator lines."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return any("# long:" in lines[i - 1] for i in range(max(first - 1, 1), node.lineno + 1))


def long_functions(path: Path) -> list[str]:
    """``path:line name (N lines)`` for each function over the limit without a ``# long:`` comment."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.body[0].lineno + 1
            if length > MAX_FUNCTION_LINES and not _explained(lines, node):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_library_module_is_over_300_lines():
    over = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not over, "modules over 300 lines (split them by what they do):\n" + "\n".join(over)


def test_no_function_is_over_60_lines_without_a_reason():
    found = [row for path in _modules() for row in long_functions(path)]
    assert not found, ("functions over 60 lines; split them into named steps, or say why on the def "
                       "line with '# long: <reason>':\n" + "\n".join(found))


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\ndef g():  # long: a table\n{body}\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pkg"
    try:
        assert [row.split()[1] for row in long_functions(tmp_path / "m.py")] == ["f"]
    finally:
        PACKAGE = saved
