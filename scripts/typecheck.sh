#!/usr/bin/env bash
# mypy over the package as it is installed: registry/ is `modelreg` and cli/ is `modelreg.cli`.
# mypy cannot follow setuptools' package-dir mapping, so a tree of symlinks under build/ gives it
# the import names (error paths point through build/typecheck/modelreg/ to the real files).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/modelreg"
for entry in registry/*; do ln -s "../../../$entry" "$tree/modelreg/$(basename "$entry")"; done
ln -s ../../../cli "$tree/modelreg/cli"
exec "${PYTHON:-.venv/bin/python}" -m mypy --config-file pyproject.toml "$tree/modelreg" "$@"
