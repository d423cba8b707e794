# The registry-free image: the local toolchain (requirements/pipeline.lock) on a Debian root
# file system made by debootstrap. Built by docker/build_local_image.py (`make image-local`),
# never by hand: BASE is the `docker import`ed root file system, and the build context holds
# the lock and a wheelhouse downloaded on the host. The build runs with `--network none`, so
# every wheel comes from the wheelhouse and pip checks each against the lock's sha256.

ARG BASE=facenet-edgetpu-base:missing

FROM ${BASE} AS install
LABEL facenet-edgetpu.stage=install
COPY pipeline.lock /wheels/pipeline.lock
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-index --find-links /wheels --require-hashes \
        --no-deps --disable-pip-version-check --no-cache-dir -r /wheels/pipeline.lock \
 && /opt/venv/bin/python -m pip check

FROM ${BASE}
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp pipeline \
 && python -c "import cv2, h5py, numpy, skimage, tensorflow, tflite, yaml"
# The docker runner replaces this user with the invoking user's uid:gid.
USER 10001:10001
WORKDIR /tmp
CMD ["python"]
