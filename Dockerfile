# The production toolchain image: Python 3.7, TensorFlow 1.15.5 and h5py 2.10.0 (the seed's
# converter, `from_keras_model_file` era), the other stage dependencies from
# requirements/tf115-py37.lock (every file checked by sha256), and the Edge TPU compiler 15.0
# (15.0.340273435, the compiler of the seed's reference table). x86-64 only: the compiler is.
#
#   docker build -t facenet-edgetpu:tf1.15 .
#   # params.yaml: runner: {kind: docker, image: "facenet-edgetpu:tf1.15"}
#
# Building needs Docker Hub and packages.cloud.google.com; see docs/containers.md. Machines
# without a registry use the registry-free image instead (`make image-local`).
# CI cannot build this image; it checks it statically (tests/test_production_image.py).

# python:3.7.17-slim-bookworm, the last Python 3.7 image (multi-platform index digest, as
# recorded by docker-library/repo-info, built 2023-07-28).
FROM python:3.7.17-slim-bookworm@sha256:2be6d1c6128711fbe44283ec8feb87691f67e15347411d4c0147ab10e42c8b6b

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Coral's .deb of the compiler, pinned by version and by the sha256 of the file. The URL and
# hash are the ones nixpkgs pins for edgetpu-compiler 15.0 (pkgs/by-name/ed/edgetpu-compiler);
# Coral's pool names the file by its sha256. Not downloadable from the CI machines: unverified
# from here beyond that source.
ARG EDGETPU_COMPILER_SHA256=ce03822053c2bddbb8640eaa988396ae66f9bc6b9d6d671914acd1727c2b445a
ARG EDGETPU_COMPILER_URL=https://packages.cloud.google.com/apt/pool/edgetpu-compiler_15.0_amd64_${EDGETPU_COMPILER_SHA256}.deb

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

WORKDIR /tmp/build

# The compiler: download with the image's own Python (no extra tools), check, install. apt
# resolves its few library dependencies from the base image's Debian release.
RUN python -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
        "${EDGETPU_COMPILER_URL}" edgetpu-compiler.deb \
 && echo "${EDGETPU_COMPILER_SHA256}  edgetpu-compiler.deb" | sha256sum --check --strict - \
 && apt-get update \
 && apt-get install -y --no-install-recommends ./edgetpu-compiler.deb \
 && rm -rf /var/lib/apt/lists/* edgetpu-compiler.deb \
 && edgetpu_compiler --version

# The stage dependencies, every file checked against the lock. gast 0.2.2 (pinned by
# TensorFlow 1.15) exists only as a source archive: it is built with the setuptools and wheel
# already in the image (no build isolation, so nothing unhashed is downloaded).
COPY requirements/tf115-py37.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps --no-build-isolation -r tf115-py37.lock \
 && pip check \
 && python -c "import tensorflow as tf, h5py; assert tf.__version__ == '1.15.5', tf.__version__; assert h5py.__version__ == '2.10.0'" \
 && rm tf115-py37.lock

# A non-root user; the docker runner replaces it with the invoking user's uid:gid anyway.
RUN useradd --uid 10001 --user-group --create-home pipeline
USER 10001:10001
WORKDIR /home/pipeline
CMD ["python"]
