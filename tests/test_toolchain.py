"""toolchain.yaml: what it records, and the entry point's refusal to run under a stale one."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import tensorflow as tf
import yaml

from facenet_edgetpu.core import toolchain


def test_current_toolchain_reports_the_real_versions():
    actual = toolchain.current_toolchain("edgetpu_compiler_that_does_not_exist")
    assert actual["tensorflow"] == tf.__version__
    assert actual["python"] == platform.python_version()
    assert actual["edgetpu_compiler"] == toolchain.PREDICTED
    assert set(actual) == {"tensorflow", "h5py", "numpy", "opencv", "scikit-image", "tflite",
                           "matplotlib", "python", "edgetpu_compiler", "runtime"}


def test_stale_keys_lists_only_the_differences():
    assert toolchain.stale_keys({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {
        "b": ("2", "3"), "c": (None, "4")}
    assert toolchain.stale_keys(None, {"a": "1"}) == {"a": (None, "1")}


def run(args, cwd):
    return subprocess.run([sys.executable] + args, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)


def test_entry_point_refuses_a_stale_toolchain_and_rewrite_fixes_it(tmp_path):
    import shutil
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(name, str(tmp_path / name))
    assert run(["-m", "facenet_edgetpu", "toolchain"], str(tmp_path)).returncode == 0
    first = (tmp_path / "toolchain.yaml").read_bytes()
    again = run(["-m", "facenet_edgetpu", "toolchain"], str(tmp_path))
    assert "up to date" in again.stdout and (tmp_path / "toolchain.yaml").read_bytes() == first

    # One section per stage, with exactly the keys the stage declares in dvc.yaml.
    recorded = yaml.safe_load(first)
    assert sorted(recorded["crop_faces"]) == ["numpy", "opencv", "python", "runtime"]
    assert recorded["quantize"]["tensorflow"] == tf.__version__
    assert "fetch_inputs" not in recorded

    recorded["quantize"]["tensorflow"] = "1.15.5"
    (tmp_path / "toolchain.yaml").write_text(yaml.safe_dump(recorded))
    assert run(["-m", "facenet_edgetpu", "toolchain", "--check"], str(tmp_path)).returncode == 1
    refused = run(["-m", "facenet_edgetpu", "quantize", "--model", "m.h5", "--calibration",
                   "c.npy", "--out", "m.tflite", "--report", "q.json"], str(tmp_path))
    assert refused.returncode == 1
    assert "for stage quantize (tensorflow: recorded 1.15.5, found {})".format(
        tf.__version__) in refused.stdout
    assert "Traceback" not in refused.stdout
    # Another stage's section is still current: it runs (and fails later, on its own input).
    other = run(["-m", "facenet_edgetpu", "crop_faces", "--photos", "none", "--faces", "f",
                 "--metrics", "m.json"], str(tmp_path))
    assert "toolchain.yaml" not in other.stdout and "none not found" in other.stdout

    fixed = run(["-m", "facenet_edgetpu", "toolchain"], str(tmp_path))
    assert "quantize.tensorflow 1.15.5 -> {}".format(tf.__version__) in fixed.stdout
    assert (tmp_path / "toolchain.yaml").read_bytes() == first


def test_a_stage_may_declare_only_its_own_section(tmp_path):
    import shutil
    shutil.copy("params.yaml", str(tmp_path / "params.yaml"))
    text = open("dvc.yaml").read().replace("- crop_faces.numpy", "- quantize.numpy")
    (tmp_path / "dvc.yaml").write_text(text)
    done = run(["-m", "facenet_edgetpu", "toolchain"], str(tmp_path))
    assert done.returncode == 1
    assert "stage crop_faces declares toolchain.yaml:quantize.numpy" in done.stdout


def test_unknown_stage_gives_usage():
    done = run(["-m", "facenet_edgetpu", "train"], ".")
    assert done.returncode == 2 and "usage: python -m facenet_edgetpu" in done.stdout


def test_an_installed_compiler_is_recorded_by_its_version(monkeypatch):
    # The FAKE compiler stands in for edgetpu_compiler, which cannot be installed here.
    fake = os.path.join(os.path.dirname(__file__), "fake_edgetpu_compiler")
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_VERSION", "15.0.340273435")
    assert toolchain.compiler_version(fake) == "15.0.340273435"
    assert toolchain.current_toolchain(fake)["edgetpu_compiler"] == "15.0.340273435"
