"""Importing paramiko and urllib3 without `importlib.metadata`.

Both ask `importlib.metadata` for a version while they are imported: paramiko's
`__init__` calls `version("paramiko")` for its `__version__` (its SSH banner), urllib3's
`http2` module takes `version` to check h2 later, only if HTTP/2 is switched on. Loading
`importlib.metadata` (email, zipfile, csv...) and scanning every distribution on sys.path
cost 15-20 ms of an SSH or S3 command's start-up (`python -X importtime`).

While such an import runs (`deferred_metadata`), `importlib.metadata` is a stand-in:
its `version(name)` reads the `Version:` of the one `NAME-*.dist-info` beside the package
`name` being imported, and anything else (another name, no or several dist-infos, any
other attribute, a call after the import) goes to the real module, imported then. A
program that imported `importlib.metadata` before is left alone.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NAME = "importlib.metadata"


def dist_info_version(name: str) -> str | None:
    """The `Version:` in the one `name-*.dist-info/METADATA` beside the imported package `name`."""
    origin = getattr(sys.modules.get(name), "__file__", None)
    if not origin:
        return None
    found = list(Path(origin).parent.parent.glob(f"{name}-*.dist-info"))
    if len(found) != 1:
        return None
    try:
        with open(found[0] / "METADATA", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():  # the end of the headers
                    return None
    except OSError:
        return None
    return None


def _stand_in() -> types.ModuleType:
    stand_in = types.ModuleType(_NAME)

    def real() -> types.ModuleType:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
        import importlib.metadata

        return importlib.metadata

    def version(name: str) -> str:
        known = dist_info_version(name)
        return known if known is not None else real().version(name)

    def attribute_of_real(attribute: str):
        if attribute.startswith("__"):  # the import system probing (__path__, __spec__...)
            raise AttributeError(attribute)
        return getattr(real(), attribute)

    stand_in.version = version  # type: ignore[attr-defined]
    stand_in.__getattr__ = attribute_of_real  # type: ignore[method-assign]
    return stand_in


@contextmanager
def deferred_metadata() -> Iterator[None]:
    """Within the block, `importlib.metadata` is the stand-in (unless it was imported already)."""
    if _NAME in sys.modules:
        yield
        return
    stand_in = _stand_in()
    sys.modules[_NAME] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
