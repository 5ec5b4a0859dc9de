"""Shared pieces of the benchmarks: timing, sizes, a table printer, throwaway settings."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

from modelreg.config import Settings

REPEATS = 3


def parse_size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def median_seconds(func, repeats: int = REPEATS, setup=None) -> float:
    """Median wall time of `func()` over `repeats` runs; `setup()` runs untimed before each."""
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(*cmd: str, env: dict | None = None) -> None:
    subprocess.run(list(cmd), check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def write_random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 8 << 20))
            out.write(chunk)
            remaining -= len(chunk)
    return path



def settings_in(home: Path, workspace: Path) -> Settings:
    workspace.mkdir(parents=True, exist_ok=True)
    return Settings.resolve(env={"MODELREG_HOME": str(home)}, workspace=workspace)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in
                        enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * width for width in widths))
