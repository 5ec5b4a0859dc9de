"""How the CLI talks to people: rich progress bars and messages on stderr, results on stdout.

Bars appear only on a terminal and never with --quiet; messages are suppressed by
--quiet. `RichProgress` implements `modelreg.progress.ProgressReporter`. rich is
imported on the first message, and its progress bars only on a terminal, so
`--help` and a quiet command do not pay for them.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelreg.units import human_size as human_size  # re-exported: commands format sizes with it

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class LazyConsole:
    """A rich `Console`, created (and rich imported) on first use; attributes pass through."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr, soft_wrap=True)
            if not self._stderr and not console.is_terminal:  # piped: never cut digests to 80 columns
                console.width = 200
            self._console = console
        return self._console

    def line(self, text: str) -> None:
        """Print `text` as it is (no markup, emoji codes or highlighting) without importing rich:
        the one-line results of push and pull, 0.1 s sooner."""
        if self._console is not None:
            self._console.print(text, markup=False, emoji=False, highlight=False)
            return
        stream = sys.stderr if self._stderr else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


_FORCE_TERMINAL = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "FORCE_COLOR")
"""Environment variables with which rich may treat a non-TTY as a terminal."""

stdout = LazyConsole(stderr=False)
stderr = LazyConsole(stderr=True)


def stderr_may_be_terminal() -> bool:
    """Whether rich could treat stderr as a terminal (a TTY, or one forced by the environment).
    When not, rich prints text unstyled, so plain text is the same output without importing it."""
    return sys.stderr.isatty() or any(os.environ.get(name) for name in _FORCE_TERMINAL)


def _ignore(_n: int) -> None:
    return None


class RichProgress:
    """Progress bars for transfers and hashing (thread-safe: rich Progress locks internally)."""

    def __init__(self, progress: Progress | None, quiet: bool) -> None:
        self._progress = progress
        self._quiet = quiet

    def task(self, label: str, total: int):
        if self._progress is None:
            return _ignore
        progress = self._progress
        task_id = progress.add_task(label, total=total)
        return lambda n: progress.advance(task_id, n)

    def message(self, text: str) -> None:
        if self._quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            stderr.line(text)


@contextmanager
def progress_reporter(quiet: bool):
    """Yield a reporter: bars on a TTY, plain messages otherwise, nothing with --quiet."""
    if quiet or not stderr_may_be_terminal() or not stderr.is_terminal:  # rich decides only where it could say yes
        yield RichProgress(None, quiet)
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr.console, transient=True) as progress:
        yield RichProgress(progress, quiet)


def print_json(data) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def print_columns(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A plain table (title, header, left-aligned columns two spaces apart) on stdout, without rich.

    For long outputs such as `list` of 10,000 versions: rich's Table took 4 s per 1,000 rows.
    """
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, name in enumerate(header)]
    lines = [title, "  ".join(name.ljust(width) for name, width in zip(header, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    stdout.line("\n".join(lines))
