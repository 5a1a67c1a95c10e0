"""The project modules a module imports, found by reading its import statements (no imports run).

Every `import` and `from ... import` counts, wherever it stands: at the top, inside a function
(the stages import digits.model lazily, after pinning the CPU kernels) or under
`if TYPE_CHECKING:`. Importing `pkg.module` runs `pkg/__init__.py` too, so packages count.
Only files inside the project are followed; the standard library and installed packages are not.
"""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).parents[2]


def module_file(name: str, root: Path = PROJECT) -> Path | None:
    """digits.model -> digits/model.py; digits -> digits/__init__.py; None outside the project."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(name: str) -> list[str]:
    """digits.app.server -> [digits, digits.app, digits.app.server]."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name the file's import statements may load (`from a import b` gives a and,
    in case b is a submodule, a.b)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..pkg import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_imports(entry: str, root: Path = PROJECT) -> set[Path]:
    """The files of every project module that running `python -m <entry>` may import, the
    entry's own file and its packages' __init__.py included, as paths relative to `root`."""
    seen: set[str] = set()
    pending = _with_packages(entry)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            continue
        seen.add(name)
        for imported in imported_names(path, name):
            pending.extend(_with_packages(imported))
    return {module_file(name, root).relative_to(root) for name in seen}
