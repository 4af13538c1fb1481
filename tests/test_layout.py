"""The data flows one way: each layer imports only what lies upstream of it.

Read from the source with ``ast`` (no import runs), in the spirit of httpx's
``test_exported_members.py``: the rules of ARCHITECTURE.md, held by a test that names the module
and the import that breaks one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "localcache"

# (importing package, forbidden package): "store" covers localcache/store/**.
FORBIDDEN = {
    "store": ("providers", "sync", "signals", "emulator"),
    "providers": ("store", "sync", "emulator"),
    "sync": ("emulator",),
}
UI_TOOLKITS = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "kivy")
UI_MODULES = ("qt", "kivy")  # localcache/qt.py and localcache/kivy.py alone may import them


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # ``from .. import signals`` names a module too
                yield node.lineno, f"{target}.{alias.name}"


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "localcache" else None


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        own = layer(module_name(path, root))
        for line, target in imports_of(path, root):
            where = f"{path.relative_to(root.parent)}:{line} imports {target}"
            if own in FORBIDDEN and layer(target) in FORBIDDEN[own]:
                found.append(f"{where} ({own} must not depend on {layer(target)})")
            if target.split(".")[0] in UI_TOOLKITS and own not in UI_MODULES:
                found.append(f"{where} (only qt.py and kivy.py may import a UI toolkit)")
    return found


def test_the_package_keeps_its_import_rules() -> None:
    assert PACKAGE.is_dir()
    assert violations() == []


def test_every_module_is_read() -> None:
    """The rules see the layers they guard (a rename would otherwise silence them)."""
    names = {module_name(p) for p in PACKAGE.rglob("*.py")}
    for package in ("store", "providers", "sync", "emulator"):
        assert any(n.startswith(f"localcache.{package}.") for n in names), package


@pytest.mark.parametrize(("module", "line"), [
    ("store/apply.py", "from ..providers.base import Provider"),
    ("store/query.py", "from ..sync.engine import SyncEngine"),
    ("store/database.py", "from .. import signals"),
    ("store/merge.py", "from ..signals import ChangeSet"),
    ("store/models.py", "import localcache.emulator"),
    ("providers/contentful.py", "from ..store.database import Store"),
    ("providers/kontent.py", "from ..sync import engine"),
    ("providers/http.py", "from ..emulator import Emulator"),
    ("sync/engine.py", "from ..emulator.space import Space"),
    ("cache.py", "from PySide6.QtCore import QObject"),
    ("signals.py", "import kivy"),
])
def test_each_forbidden_import_is_caught(tmp_path: Path, module: str, line: str) -> None:
    """Add one forbidden import back to a copy of the package: the rule names it."""
    copy = tmp_path / "localcache"
    for path in PACKAGE.rglob("*.py"):
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert violations(copy) == []
    spoiled = copy / module
    spoiled.write_text(spoiled.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    found = violations(copy)
    assert len(found) >= 1
    assert all(f"localcache/{module}:" in v for v in found), found


def test_ui_modules_may_import_their_toolkit(tmp_path: Path) -> None:
    copy = tmp_path / "localcache"
    copy.mkdir()
    (copy / "__init__.py").write_text("")
    (copy / "qt.py").write_text("from PySide6.QtCore import QObject\n")
    (copy / "kivy.py").write_text("from kivy.event import EventDispatcher\n")
    assert violations(copy) == []


def test_importing_localcache_loads_no_ui_toolkit() -> None:
    """In a fresh interpreter: the package, its live lists and the emulator load, and no UI
    toolkit is among the loaded modules (the static rule above can miss an indirect import)."""
    import subprocess
    import sys

    script = ("import sys, localcache, localcache.live, localcache.emulator, localcache.cli\n"
              f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UI_TOOLKITS!r}))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
    probe = subprocess.run([sys.executable, "-c", script.replace(
        "localcache.cli\n", "localcache.cli, kivy.event\n")], capture_output=True, text=True)
    # The probe can tell: with a toolkit imported, the same script names it.
    assert probe.returncode != 0 or "kivy" in probe.stdout
