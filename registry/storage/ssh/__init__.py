"""The `ssh://` backend (see `backend`). paramiko is imported here, first, without `invoke`
and without `importlib.metadata`.

paramiko 5 imports `invoke` at start-up only to run `Match exec` lines of ~/.ssh/config,
and invoke pulls in asyncio and unittest.mock: 0.1-0.3 s of every SSH command's
start-up (measured with `python -X importtime`, bench/bench_cli.py). So the first
import of paramiko sees `import invoke` fail, and `connect.resolve_target` hands invoke
to paramiko only when the config file has a `Match ... exec` line. A program that
imported invoke before is left alone; one that imports it later gets it as usual.

paramiko's `__init__` also calls `importlib.metadata.version("paramiko")` for its
`__version__` (the client's SSH banner): importing `importlib.metadata` (email, zipfile,
csv...) and scanning every distribution on sys.path took ~17 ms of a pull's ~0.4 s. While
paramiko is first imported, `importlib.metadata` is a stand-in whose `version` reads the
`Version:` of paramiko's own dist-info beside the package; any other use, or a dist-info
that is not exactly one, goes to the real module. A program that imported
`importlib.metadata` before is left alone.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def _paramiko_version() -> str | None:
    """The `Version:` in the one paramiko-*.dist-info/METADATA beside the package being imported,
    else None."""
    origin = getattr(sys.modules.get("paramiko"), "__file__", None)
    if not origin:
        return None
    found = list(Path(origin).parent.parent.glob("paramiko-*.dist-info"))
    if len(found) != 1:
        return None
    try:
        with open(found[0] / "METADATA", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():
                    return None
    except OSError:
        return None
    return None


def _metadata_stand_in() -> types.ModuleType:
    stand_in = types.ModuleType("importlib.metadata")

    def real() -> types.ModuleType:
        if sys.modules.get("importlib.metadata") is stand_in:
            del sys.modules["importlib.metadata"]
        import importlib.metadata

        return importlib.metadata

    def version(name: str) -> str:
        known = _paramiko_version() if name == "paramiko" else None
        return known if known is not None else real().version(name)

    stand_in.version = version  # type: ignore[attr-defined]
    stand_in.__getattr__ = lambda attribute: getattr(real(), attribute)  # type: ignore[method-assign]
    return stand_in


def _import_paramiko_lean() -> None:
    if "paramiko" in sys.modules:
        return
    stand_ins: dict[str, object] = {}
    if "invoke" not in sys.modules:
        stand_ins["invoke"] = None  # makes `import invoke` raise ImportError
    if "importlib.metadata" not in sys.modules:
        stand_ins["importlib.metadata"] = _metadata_stand_in()
    sys.modules.update(stand_ins)  # type: ignore[arg-type]
    try:
        import paramiko  # noqa: F401
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


_import_paramiko_lean()
