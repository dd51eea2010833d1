"""A plugin package "installed" the way pip does: a package folder plus a ``*.dist-info`` with entry points,
on ``sys.path``. lvlm discovers it through ``importlib.metadata`` exactly as it discovers a pip-installed one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lvlm.core.registry import plugin_entry_points


@contextmanager
def installed_plugin(root: Path, package: str, modules: dict[str, str], entry_points: str) -> Iterator[Path]:
    """Write ``package`` (``{module: source}``) and its dist-info under ``root``; on ``sys.path`` while open."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / package / f"{module}.py").write_text(source)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    sys.path.insert(0, str(root))
    plugin_entry_points.cache_clear()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]
        plugin_entry_points.cache_clear()
