"""How the CLI talks to people: rich progress bars and messages on stderr, results on stdout.

Bars appear only on a terminal and never with --quiet; messages are suppressed by
--quiet. `RichProgress` implements `modelreg.progress.ProgressReporter`.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from modelreg.progress import SilentProgress

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
if not stdout.is_terminal:  # piped output: never cut digests to fit 80 columns
    stdout.width = 200


class RichProgress:
    """Progress bars for transfers and hashing (thread-safe: rich Progress locks internally)."""

    def __init__(self, progress: Progress | None, quiet: bool) -> None:
        self._progress = progress
        self._quiet = quiet

    def task(self, label: str, total: int):
        if self._progress is None:
            return SilentProgress().task(label, total)
        task_id = self._progress.add_task(label, total=total)
        return lambda n: self._progress.advance(task_id, n)

    def message(self, text: str) -> None:
        if not self._quiet:
            (self._progress.console if self._progress else stderr).print(text, highlight=False)


@contextmanager
def progress_reporter(quiet: bool):
    """Yield a reporter: bars on a TTY, plain messages otherwise, nothing with --quiet."""
    if quiet or not stderr.is_terminal:
        yield RichProgress(None, quiet)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        yield RichProgress(progress, quiet)


def print_json(data) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
