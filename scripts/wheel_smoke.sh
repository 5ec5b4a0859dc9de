#!/usr/bin/env bash
# Install a built wheel into a fresh venv outside the checkout and use it as a user would.
set -euo pipefail
wheel=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
cd "$work"
"$work/venv/bin/modelreg" --help >/dev/null
"$work/venv/bin/modelreg" --version
"$work/venv/bin/python" -c "import modelreg; assert callable(modelreg.load); print('import modelreg: ok')"
"$work/venv/bin/python" -m modelreg --version >/dev/null
"$work/venv/bin/python" - <<'PY'
import importlib.util
from importlib import resources
stray = [name for name in ("registry", "cli") if importlib.util.find_spec(name)]
assert not stray, f"the wheel installs top-level packages {stray}"
schema = resources.files("modelreg.schemas").joinpath("manifest-v1.schema.json")
assert schema.is_file(), "the manifest schema is missing from the wheel"
print("wheel contents: ok")
PY
