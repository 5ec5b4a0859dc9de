"""Names that say which process on which host made a file, and whether that process still runs.

Leftovers of killed commands (download files, `--dest` staging directories) carry
`<host>.<pid>.` in their names, so a later command can tell its own host's dead
processes' leftovers from those of processes still at work (or of other hosts
sharing the directory, which it leaves alone).
"""

from __future__ import annotations

import os
import socket


def owner_tag() -> str:
    """`<host>.<pid>` of this process."""
    return f"{socket.gethostname()}.{os.getpid()}"


def dead_owner(name: str, prefix: str) -> bool:
    """True when `name` is `<prefix><this host>.<pid>.…` and process `pid` no longer runs."""
    host_prefix = f"{prefix}{socket.gethostname()}."
    if not name.startswith(host_prefix):
        return False
    pid = name[len(host_prefix):].split(".")[0]
    return pid.isdigit() and not process_runs(int(pid))


def process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
