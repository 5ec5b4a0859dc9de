"""Progress reporting as callbacks the library calls; the CLI decides how to draw them.

The library never imports rich. A `ProgressReporter` hands out one callback per
file or phase; each callback receives byte counts as they are processed.
"""

from __future__ import annotations

from typing import Protocol

from modelreg.hashing import Progress


class ProgressReporter(Protocol):
    def task(self, label: str, total: int) -> Progress:
        """Start a task of `total` bytes; returns the callback to feed byte counts."""

    def message(self, text: str) -> None:
        """A one-line note for the user (e.g. 'skipped 3 blobs already on the remote')."""


class SilentProgress:
    """The default: report nothing."""

    def task(self, label: str, total: int) -> Progress:
        return _ignore

    def message(self, text: str) -> None:
        return None


def _ignore(_n: int) -> None:
    return None


