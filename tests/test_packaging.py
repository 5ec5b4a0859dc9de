"""The installed package is `modelreg` alone, and its package list matches the source tree."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def source_packages() -> set[str]:
    names = set()
    for root, import_name in (("registry", "modelreg"), ("cli", "modelreg.cli")):
        for init in (REPO_ROOT / root).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / root).parts
            names.add(".".join((import_name, *relative)))
    return names


def test_every_source_package_is_listed_for_the_wheel():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert set(config["tool"]["setuptools"]["packages"]) == source_packages()


def test_no_top_level_registry_or_cli_package_is_installed(tmp_path):
    probe = ("import importlib.util as u; print([n for n in ('modelreg', 'registry', 'cli') "
             "if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "['modelreg']", out.stderr
