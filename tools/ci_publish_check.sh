#!/usr/bin/env bash
# The publishing path for real (issue 11), run by .ci/run after `make test`: real servers on
# loopback (SeaweedFS S3, docker-registry, a second empty Docker engine), `make publish` of
# the real pipeline, a fresh clone's `make pull`, a no-op `dvc repro`, the bundle verified,
# and the toolchain image pulled by digest. These are the tests marked `publish`
# (tests/test_publish_pipeline.py, tests/test_publish_image.py), which `make test` leaves out.
#
# Needs root for the second Docker engine, the Debian packages docker-registry (and
# openssh-server for the SSH remote tests, which run in `make test`) and the registry-free
# image (`make image-local`); .ci/run provides them.
set -euo pipefail
cd "$(dirname "$0")/.."
make .venv/.installed >/dev/null
exec .venv/bin/python -m pytest -m publish -p no:cacheprovider "$@" \
  tests/test_publish_pipeline.py tests/test_publish_image.py
