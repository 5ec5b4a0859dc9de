"""modelreg as a user installs it, for `make bench`: its wheel in a venv of its own.

The checkout's `.venv` holds modelreg as an editable install, whose import finder sits in
front of every import of the process (`python -X importtime`: 18-21 ms of each command's
start-up) and which no user has. `prepare()` builds the wheel, installs it into
`build/bench-venv` with the dependency versions of the running environment (its
`pip freeze`, as constraints), and returns that venv's `modelreg`; the benchmarks run it
when `MODELREG_BENCH_BIN` names it (`bench.run` sets it for its steps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD = REPO_ROOT / "build"


def modelreg_command() -> str:
    """The `modelreg` the benchmarks run: `MODELREG_BENCH_BIN`, else the one beside this interpreter."""
    return os.environ.get("MODELREG_BENCH_BIN") or str(Path(sys.executable).with_name("modelreg"))


def prepare() -> Path:
    """Build the wheel and install it into a fresh `build/bench-venv`; returns its `modelreg`."""
    wheels, venv = BUILD / "bench-wheel", BUILD / "bench-venv"
    shutil.rmtree(wheels, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(wheels), str(REPO_ROOT)],
                   check=True, stdout=subprocess.DEVNULL)
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    constraints = BUILD / "bench-constraints.txt"
    constraints.write_text("".join(line + "\n" for line in frozen.splitlines()
                                   if "==" in line and not line.lower().startswith("modelreg")))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(wheels.glob("modelreg-*.whl"))
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(constraints), str(wheel)], check=True)
    return venv / "bin" / "modelreg"
