"""Small helpers the tests share: run the real `modelreg` CLI, make tiny bundles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from modelreg.bundle import create_bundle
from modelreg.config import Settings, add_remote
from modelreg.manifest import Manifest
from modelreg.refs import Ref

MODELREG = Path(sys.executable).with_name("modelreg")


def python_prints(code: str) -> list[str]:
    """The whitespace-separated words a fresh interpreter running `code` prints (it must succeed)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def run_cli(*args: str, expect: int | None = 0, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `modelreg ARGS` as a user would (a subprocess); assert its exit code when `expect` is set."""
    result = subprocess.run([str(MODELREG), *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    if expect is not None:
        assert result.returncode == expect, (
            f"modelreg {' '.join(args)} exited {result.returncode}, expected {expect}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def make_bundle(settings: Settings, version: str, contents: dict[str, bytes], tmp: Path,
                name: str = "emotion") -> Manifest:
    """A cached, pinned bundle of arbitrary files (role 'other'), without any model machinery."""
    source = tmp / f"source-{name}-{version}"
    source.mkdir(parents=True, exist_ok=True)
    files = {}
    for file_name, data in contents.items():
        (source / file_name).write_bytes(data)
        files[file_name] = ("other", source / file_name)
    model = {"family": "test-files", "input_shape": [], "labels": [], "hyperparameters": {}}
    return create_bundle(settings, Ref(name, version), files, model=model, metrics={},
                         provenance={"modelreg_version": "test"})


def register_remote(settings: Settings, spec, name: str = "target") -> str:
    """Save `spec` as a named remote so CLI calls can use `--remote NAME`."""
    add_remote(settings, name, spec.url, options={k: v for k, v in spec.options.items()})
    return name


def reference_inputs(hp: dict, features: list, mean, std):
    """What the v9 model is fed for `features`, built independently of registry code (for reference models)."""
    batch = np.zeros((len(features), hp["sequence_length"], hp["feature_dim"]), np.float32)
    mask = np.zeros(batch.shape[:2], bool)
    for i, f in enumerate(features):
        n = min(len(f), hp["sequence_length"])
        batch[i, :n] = (f[:n] - mean) / std
        mask[i, :n] = True
    return [batch, mask] if hp["masking"] == "lengths" else batch


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.02) -> None:
    """Poll `predicate` until it is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached in time")
