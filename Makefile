# modelreg developer entry points. `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TF_VERSION := 2.21.*

.PHONY: install bytecode system-deps demo test test-fast check lint typecheck wheel-smoke bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[ml,test,dev]' 'tensorflow-cpu==$(TF_VERSION)'
	# Keras 2, only to prove that Keras-2-era .h5 files load; --no-deps keeps tensorflow-cpu
	$(PY) -m pip install -q --no-deps 'tf-keras==$(TF_VERSION)'
	touch $(STAMP)

# Bytecode for the editable checkout, as pip writes it for an installed wheel: without it
# (e.g. under PYTHONDONTWRITEBYTECODE=1) every command recompiles ~40 modules, ~0.1 s.
bytecode: $(STAMP)
	$(PY) -m compileall -q registry cli >/dev/null

install: $(STAMP)

# OpenSSH's sshd is needed by the SSH backend tests (a real server on loopback).
system-deps:
	@command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q openssh-server || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q openssh-server; }; }

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not tf"

# Static checks and the packaging smoke test: the wheel installs into a fresh venv outside the
# checkout, where `modelreg --help` and `import modelreg` must work and no `registry`/`cli` exists.
check: lint typecheck wheel-smoke

lint: $(STAMP)
	$(VENV)/bin/ruff check registry cli tests bench

typecheck: $(STAMP)
	PYTHON=$(PY) bash scripts/typecheck.sh

wheel-smoke: $(STAMP)
	rm -rf build/wheel && $(PY) -m build --wheel --outdir build/wheel . >/dev/null
	bash scripts/wheel_smoke.sh build/wheel/*.whl

bench: $(STAMP) system-deps bytecode
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
