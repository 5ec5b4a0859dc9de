"""The `ssh://` backend (see `backend`). paramiko is imported here, first, without `invoke`
and without `importlib.metadata` (`modelreg.lean_imports`).

paramiko 5 imports `invoke` at start-up only to run `Match exec` lines of ~/.ssh/config,
and invoke pulls in asyncio and unittest.mock: 0.1-0.3 s of every SSH command's
start-up (measured with `python -X importtime`, bench/bench_cli.py). So the first
import of paramiko sees `import invoke` fail, and `connect.resolve_target` hands invoke
to paramiko only when the config file has a `Match ... exec` line. A program that
imported invoke before is left alone; one that imports it later gets it as usual.
"""

from __future__ import annotations

import sys

from modelreg.lean_imports import deferred_metadata


def _import_paramiko_lean() -> None:
    if "paramiko" in sys.modules:
        return
    hide_invoke = "invoke" not in sys.modules
    if hide_invoke:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # makes `import invoke` raise ImportError
    try:
        with deferred_metadata():
            import paramiko  # noqa: F401
    finally:
        if hide_invoke and "invoke" in sys.modules and sys.modules["invoke"] is None:
            del sys.modules["invoke"]


_import_paramiko_lean()
