"""The repository files a Python module runs when imported: its import closure, read statically.

Every `import` and `from ... import` anywhere in a module counts (also those inside functions:
a lazy import is still code the stage runs), relative imports included; importing `a.b.c` runs
`a/__init__.py`, `a/b/__init__.py` and `a/b/c.py`. Modules outside the repository (the standard
library, site-packages) are not followed. Dynamic imports (importlib with a computed name) are
not seen: the caller adds those roots itself.
"""
from __future__ import annotations

import ast
import os
from typing import Iterable, Iterator, Optional, Set


def module_file(repo: str, dotted: str) -> Optional[str]:
    """The repository-relative file of module `dotted`, or None when it is not in the repo."""
    base = os.path.join(repo, *dotted.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return os.path.relpath(candidate, repo).replace(os.sep, "/")
    return None


def module_name(relative_file: str) -> str:
    parts = relative_file[:-len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(relative_file: str) -> str:
    name = module_name(relative_file)
    return name if relative_file.endswith("__init__.py") else name.rpartition(".")[0]


def _prefixes(dotted: str) -> Iterator[str]:
    parts = dotted.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def imported_names(tree: ast.AST, relative_file: str) -> Iterator[str]:
    """Dotted names of every module an AST may import (submodule candidates included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            if node.level:
                package = _package_of(relative_file).split(".")
                base = ".".join(package[:len(package) - node.level + 1])
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            yield target
            for alias in node.names:   # `from pkg import module` imports a module too
                yield target + "." + alias.name


def closure(repo: str, roots: Iterable[str]) -> Set[str]:
    """Repository-relative files run by importing the modules `roots` (dotted names)."""
    found = set()  # type: Set[str]
    pending = []  # type: List[str]
    for root in roots:
        for prefix in _prefixes(root):
            path = module_file(repo, prefix)
            if path is None:
                raise ValueError("module {} is not in {}".format(prefix, repo))
            pending.append(path)
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        with open(os.path.join(repo, path), "r", encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for name in imported_names(tree, path):
            for prefix in _prefixes(name):
                candidate = module_file(repo, prefix)
                if candidate is not None and candidate not in found:
                    pending.append(candidate)
    return found
