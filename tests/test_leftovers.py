"""No leftovers (issue 13, item 3): a stage that is killed, stopped or runs out of space leaves no
temporary file behind once it (or, after a SIGKILL, its next run) is done, and says what
happened; a compiler that hangs is stopped with its children."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import cv2
import numpy as np
import pytest

from edgetpu_analyzer.compiler import CompilerUnusableError, query_compiler_version
from tests.conftest import set_params
from tests.hostile import (
    keras_like_h5, make_pipeline_folder, mounted_tmpfs, partials, run, stage_argv)

PREPROCESSED = os.path.join("data", "preprocessed")
FACES_ARRAY = os.path.join(PREPROCESSED, "faces.npy")
FACES = os.path.join("data", "faces")
# Generous bound for a started stage to reach its first write (seconds); reaching it is what the
# tests wait for, never how long it took.
STARTUP_LIMIT = 300


@pytest.fixture(scope="module")
def pipeline_template(tmp_path_factory):
    return make_pipeline_folder(str(tmp_path_factory.mktemp("pipeline")))


@pytest.fixture
def folder(pipeline_template, tmp_path):
    """A pipeline folder whose representative_dataset stage has its inputs: a Keras-like model
    (the stage reads only its input size) and train crops listed in a crop manifest."""
    root = str(tmp_path / "pipeline")
    os.makedirs(root)
    for name in os.listdir(pipeline_template):
        with open(os.path.join(pipeline_template, name), "rb") as source, \
                open(os.path.join(root, name), "wb") as target:
            target.write(source.read())
    keras_like_h5(os.path.join(root, "model.h5"), weight_bytes=4096)
    set_params(root, {"inputs.model": "model.h5"})
    return root


def write_crops(folder, count, blocking_last=False):
    """`count` train crops (noise images: the stage resizes and whitens, it detects nothing) and
    their manifest. With `blocking_last`, the last crop is a FIFO: reading it blocks until a
    writer opens it, which holds the stage mid-write at a known point."""
    rng = np.random.RandomState(0)
    crops = os.path.join(folder, FACES, "train", "person")
    os.makedirs(crops, exist_ok=True)
    manifest = []
    for index in range(count):
        name = "{:03d}.jpg.png".format(index)
        path = os.path.join(crops, name)
        if blocking_last and index == count - 1:
            os.mkfifo(path)
        else:
            cv2.imwrite(path, rng.randint(0, 256, (60, 50, 3), dtype=np.uint8))
        manifest.append({"crop": "train/person/" + name, "person": "person",
                         "photo": "train/person/" + name[:-4], "box": [0, 0, 50, 60],
                         "split": "train"})
    with open(os.path.join(folder, FACES, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return os.path.join(crops, "{:03d}.jpg.png".format(count - 1))


def start_until_partial(folder):
    """Start representative_dataset; return it once its temporary output exists."""
    process = subprocess.Popen(stage_argv(folder, "representative_dataset"), cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
    deadline = time.monotonic() + STARTUP_LIMIT
    while not partials(os.path.join(folder, "data")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the stage never started writing: {}".format(process.communicate()[0]))
        time.sleep(0.05)
    return process


def test_kill_9_leaves_a_partial_that_the_next_run_removes(folder):
    fifo = write_crops(folder, 4, blocking_last=True)
    process = start_until_partial(folder)
    process.kill()  # SIGKILL: nothing in Python runs, so the temporary file stays
    process.communicate()
    # the output folder's temporary sibling (and the array's temporary file inside it)
    left = [path for path in partials(os.path.join(folder, "data")) if os.sep not in path]
    assert len(left) == 1 and left[0].startswith(".preprocessed.partial-"), left

    os.remove(fifo)
    write_crops(folder, 4)
    again = run(stage_argv(folder, "representative_dataset"), folder)
    assert again.returncode == 0, again.stdout
    assert "removing {}, left by an interrupted run".format(
        os.path.join(folder, "data", left[0])) in again.stdout
    assert partials(folder) == []
    assert np.load(os.path.join(folder, FACES_ARRAY)).shape == (4, 160, 160, 3)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_remove_the_partial_on_the_way_out(folder, signum):
    write_crops(folder, 4, blocking_last=True)
    process = start_until_partial(folder)
    process.send_signal(signum)
    output = process.communicate()[0]
    assert process.returncode == 128 + signum, output
    assert ("representative_dataset stopped by SIGTERM" if signum == signal.SIGTERM else
            "representative_dataset interrupted") in output, output
    assert "Traceback" not in output
    assert partials(folder) == []
    assert not os.path.exists(os.path.join(folder, PREPROCESSED))


def test_full_disk_is_reported_as_such_and_leaves_nothing(folder):
    # 8 faces make a 2.4 MB array; the crops fit on the 1 MiB file system, the array does not.
    with mounted_tmpfs(os.path.join(folder, "data"), "size=1m"):
        write_crops(folder, 8)
        done = run(stage_argv(folder, "representative_dataset"), folder)
        left = partials(folder)
        written = os.path.exists(os.path.join(folder, PREPROCESSED))
    assert done.returncode == 1, done.stdout   # not -7 (SIGBUS), as from a memory map
    last = done.stdout.strip().splitlines()[-1]
    assert last == ("representative_dataset failed: no space left on {} (the device holding "
                    "{}): free some space and run again; nothing was recorded".format(
                        os.path.join(folder, PREPROCESSED), FACES_ARRAY)), done.stdout
    assert "Traceback" not in done.stdout
    assert left == [] and not written


def test_a_compiler_hanging_on_version_is_stopped_with_its_children(tmp_path):
    """The toolchain step asks `--version`; a compiler that forks and hangs must not leave its
    child running after the time limit."""
    child_pid = tmp_path / "child.pid"
    compiler = tmp_path / "edgetpu_compiler"
    compiler.write_text("#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n".format(child_pid))
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(CompilerUnusableError, match="did not answer within 1 s and was stopped"):
        query_compiler_version(str(compiler), timeout=1)
    pid = int(child_pid.read_text())
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)   # SIGKILL is delivered asynchronously
        assert not running(pid), "the compiler's child {} is still running".format(pid)
    finally:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def running(pid):
    """True while `pid` exists and is not a zombie (an orphan waits for init to reap it)."""
    try:
        with open("/proc/{}/stat".format(pid)) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
