"""The quantized bytes do not depend on the CPU: the pipeline's quantization path
(tests/cross_cpu_quantize.py, through the stage code) gives the same .tflite natively and under
user-mode emulation of an older x86-64 CPU (qemu-x86_64 -cpu SandyBridge: AVX, no AVX2, no FMA,
no AVX-512), so kernels that choose code by CPU features would show up as different bytes.

Before the ranges were recorded with the reference kernels and batch norms folded in float64,
the converter's one call gave different bytes in exactly this comparison (the script's
--converter output; see the closing note of the cross-machine issue).

Needs Debian's qemu-user; `.ci/run` installs it. About 2-3 minutes under emulation.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cross_cpu_quantize.py")
EMULATED_CPU = "SandyBridge"

pytestmark = pytest.mark.slow


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def host_features():
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        flags = next((line.split(":", 1)[1].split() for line in handle
                      if line.startswith("flags")), [])
    return sorted(flag for flag in flags if flag in ("avx", "avx2", "fma", "avx512f"))


@pytest.fixture(scope="module")
def qemu():
    found = shutil.which("qemu-x86_64")
    if found is None:
        message = ("qemu-x86_64 (Debian qemu-user) is not installed: `apt-get install "
                   "qemu-user` to run the cross-CPU check")
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    return found


def quantize(tmp_path, name, prefix):
    out = str(tmp_path / name)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    done = subprocess.run(prefix + [sys.executable, SCRIPT, out], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert done.returncode == 0, done.stdout[-4000:]
    return os.path.join(out, "pipeline.tflite")


def test_quantized_bytes_are_the_same_on_an_emulated_older_cpu(qemu, tmp_path):
    native = quantize(tmp_path, "native", [])
    emulated = quantize(tmp_path, "emulated", [qemu, "-cpu", EMULATED_CPU])
    assert os.path.getsize(native) > 0
    assert sha256(native) == sha256(emulated), (
        "the same quantization gave different bytes natively (CPU flags {}) and under qemu "
        "-cpu {}".format(", ".join(host_features()), EMULATED_CPU))
