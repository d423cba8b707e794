# The two commands of the README: `make repro` and `make test`. Both create the virtual
# environment from the locked requirements when it is missing or older than the locks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# DVC commands run `python -m stages ...`: the venv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test toolchain lock lint clean-venv

$(INSTALLED): requirements/pipeline.lock requirements/dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps \
		-r requirements/pipeline.lock -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

toolchain: $(INSTALLED)
	$(BIN)/python -m stages.toolchain

repro: toolchain
	$(BIN)/dvc repro

test: $(INSTALLED)
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/vermin -t=3.7- --no-tips --violations --eval-annotations stages edgetpu_analyzer

# Re-resolve the locks after editing requirements/*.in (needs pip-tools: pip install pip-tools).
lock:
	cd requirements && pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-header -o pipeline.lock pipeline.in
	cd requirements && pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-header -o dev.lock dev.in

clean-venv:
	rm -rf $(VENV)
