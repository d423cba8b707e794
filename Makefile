# The two commands of the README: `make repro` and `make test`. Both create the virtual
# environment from the locked requirements when it is missing or older than the locks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# DVC commands run `python -m facenet_edgetpu ...`: the venv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test test-fast bench fuzz toolchain lock lint clean-venv

$(INSTALLED): requirements/pipeline.lock requirements/dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps \
		-r requirements/pipeline.lock -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

toolchain: $(INSTALLED)
	$(BIN)/python -m facenet_edgetpu toolchain

repro: toolchain
	$(BIN)/dvc repro

test: $(INSTALLED)
	$(BIN)/python -m pytest

# The quick loop while editing: no TensorFlow conversion, no pipeline run, no Docker, no
# browser, no download, no fuzzing (markers in pyproject.toml; tests/conftest.py applies them;
# a -m on the command line replaces the one in addopts, so fuzz and publish are named here).
FAST_MARKERS := not slow and not docker and not browser and not network and not fuzz and not publish
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)"

# The coverage-guided fuzzers (tests/fuzz) of the parsers users feed files to, FUZZ_SECONDS
# each; fails on any crash other than the parser's documented error.
FUZZ_SECONDS ?= 30
fuzz: $(INSTALLED)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -m fuzz tests/fuzz

# Each stage's wall time and peak memory in a fresh copy, and the seed's naive path beside it.
bench: $(INSTALLED)
	$(BIN)/python tools/bench.py

# Static checks (tests/test_lint.py and test_production_image.py run them in `make test` too):
# Python 3.7 syntax and library, ruff (E, F, B), mypy --strict on the analyzer package.
lint: $(INSTALLED)
	$(BIN)/vermin -t=3.7- --no-tips --violations --eval-annotations facenet_edgetpu edgetpu_analyzer
	$(BIN)/ruff check facenet_edgetpu edgetpu_analyzer tests docker tools
	$(BIN)/mypy edgetpu_analyzer

# Re-resolve the locks after editing requirements/*.in (needs pip-tools: pip install pip-tools).
lock:
	cd requirements && pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-header -o pipeline.lock pipeline.in
	cd requirements && pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-header -o dev.lock dev.in

clean-venv:
	rm -rf $(VENV)

# --- Containers (docs/containers.md) -------------------------------------------------------
.PHONY: image-local image-production lock-tf115

# The registry-free toolchain image for `runner: {kind: docker}` in params.yaml: a debootstrap
# root file system (needs root or sudo, and the debootstrap package), `docker import`, and the
# wheels of requirements/pipeline.lock installed without network. Cached: a second run is quick.
image-local: $(INSTALLED)
	$(BIN)/python docker/build_local_image.py

# The production image (Python 3.7, TensorFlow 1.15.5, Edge TPU compiler 15.0). Needs Docker
# Hub and packages.cloud.google.com, which CI lacks; CI checks it statically instead.
image-production:
	docker build --tag facenet-edgetpu:tf1.15 .

# Re-resolve requirements/tf115-py37.lock for CPython 3.7 on manylinux x86-64, without a
# Python 3.7 (needs uv: pip install uv).
lock-tf115:
	cd requirements && uv pip compile --quiet --python-version 3.7 \
		--python-platform x86_64-manylinux_2_17 --generate-hashes --no-header \
		-o tf115-py37.lock tf115-py37.in

# --- Sharing artifacts (docs/sharing.md) -----------------------------------------------------
.PHONY: publish pull

BUNDLE ?= dist/bundle
BUNDLE_ARCHIVE ?= dist/facenet-edgetpu-bundle.tar.gz
BUILDER_ID ?= urn:facenet-edgetpu-pipeline:make-publish
INVOCATION_ID ?=

# Push outputs and run-cache (with the outputs of every cached run) to the default DVC remote,
# then write the release bundle with its provenance statement.
publish: $(INSTALLED)
	$(BIN)/python -m facenet_edgetpu.publish push
	$(BIN)/python -m facenet_edgetpu.publish bundle --out $(BUNDLE) --archive $(BUNDLE_ARCHIVE) \
		--builder-id "$(BUILDER_ID)" $(if $(INVOCATION_ID),--invocation-id "$(INVOCATION_ID)")

# toolchain.yaml first (it pulls a toolchain image named by digest), then outputs and run-cache,
# every download hash-checked: afterwards `dvc repro` runs no stage and `dvc status` is clean.
pull: toolchain
	$(BIN)/python -m facenet_edgetpu.publish pull
