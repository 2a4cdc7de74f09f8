"""The import rules of docs/design.md section 7: lower layers never import higher ones.

Every ``sapnet_export`` module is given a layer by its folder (and, in ``engine/``, by its file); an import of
a module of a higher layer, at module level or inside a function, fails the test with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sapnet_export"

#: Layer of each part of the package (docs/design.md section 7); a module may import its own layer or lower.
LAYERS = {
    "errors": 1, "fileio": 1, "shapes": 1, "provenance": 1,
    "model": 2, "data": 2,
    "engine.trt_api": 3, "engine.sidecar": 3, "engine.loader": 3, "machine": 3,
    "runners": 4,
    "measure": 5,
    "export": 6,
    "engine": 7,
    "verify": 8, "run": 8, "serve": 8,
    "cli": 9,
}


def layer_of(module: str) -> tuple[str, int]:
    """(part, layer) of a dotted module name below ``sapnet_export``; the longest matching part wins."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return key, LAYERS[key]
    raise AssertionError(f"sapnet_export.{module} has no layer in docs/design.md section 7 (add it to LAYERS)")


def _imports(path: Path, module: str):
    """(line, imported module below sapnet_export) for every import in ``path``."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
                if not target.startswith("sapnet_export"):
                    continue
                target = target.removeprefix("sapnet_export").lstrip(".")
            names = [target] if node.module or not node.level else [f"{target}.{a.name}".strip(".") for a in node.names]
            for name in names:
                if name:
                    yield node.lineno, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sapnet_export."):
                    yield node.lineno, alias.name.removeprefix("sapnet_export.")


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        if not parts:
            continue
        module = ".".join(parts)
        own_part, own = layer_of(module)
        for line, target in _imports(path, ".".join(rel.parts)):
            if target.split(".")[0] in ("", "__init__") or target == "":
                continue
            part, layer = layer_of(target)
            if layer > own:
                violations.append(f"sapnet_export/{rel}.py:{line} ({own_part}, layer {own}) imports "
                                  f"{target} ({part}, layer {layer})")
    assert not violations, "imports against docs/design.md section 7:\n" + "\n".join(violations)
