"""A small stand-in of the pipeline for the bundle and comment tests: same stage names and
output paths as dvc.yaml, each stage copying prepared files, so `dvc repro` takes seconds.

The compile results are real: parsed from real compiler stdout (tests/data) by
edgetpu_analyzer, or predicted by its predictor for a tiny quantized model converted with
TensorFlow. The Edge TPU model of the "compiled" variant is a stand-in (no compiler here).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

from edgetpu_analyzer.parse import parse_compiler_stdout
from edgetpu_analyzer.predict import predict_file
from edgetpu_analyzer.render import render_compiler_stdout, render_operation_log
from tests.tiny_models import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
V15_STDOUT = os.path.join(DATA, "oplog_facenet_v15_stdout.txt")
V15_LOG = os.path.join(DATA, "oplog_facenet_v15_edgetpu.log")
V16_PARTIAL_STDOUT = os.path.join(DATA, "oplog_facenet_v16_partial_stdout.txt")
V16_PARTIAL_LOG = os.path.join(DATA, "oplog_facenet_v16_partial_edgetpu.log")

# toolchain.yaml as the pipeline writes it: one section per stage
TOOLCHAIN = {
    "quantize": {"python": "3.11.2", "runtime": "local Linux x86_64", "tflite": "2.18.0"},
    "compile": {"edgetpu_compiler": "15.0.340273435", "python": "3.11.2",
                "runtime": "local Linux x86_64", "tflite": "2.18.0"},
}
# ... and as the provenance statement lists it: dotted keys
TOOLCHAIN_KEYS = {"{}.{}".format(stage, key): value for stage, keys in TOOLCHAIN.items()
                  for key, value in keys.items()}

DVC_YAML = """stages:
  fetch_inputs:
    cmd: mkdir -p models && cp source/model.h5 models/facenet_keras.h5
    deps: [source/model.h5]
    params: [fetch_inputs]
    outs: [models/facenet_keras.h5]
  quantize:
    cmd: cp source/quantized.tflite models/facenet_keras.tflite
    deps: [source/quantized.tflite, models/facenet_keras.h5]
    params:
      - toolchain.yaml: [quantize.python, quantize.tflite, quantize.runtime]
    outs: [models/facenet_keras.tflite]
  compile:
    cmd: rm -rf models/edgetpu && cp -r source/edgetpu models/edgetpu
    deps: [source/edgetpu, models/facenet_keras.tflite]
    params:
      - toolchain.yaml: [compile.python, compile.tflite, compile.edgetpu_compiler,
                         compile.runtime]
    outs: [models/edgetpu]
  fidelity:
    cmd: mkdir -p reports && cp source/fidelity.json reports/fidelity.json
    deps: [source/fidelity.json]
    metrics:
      - reports/fidelity.json:
          cache: false
  report:
    cmd: cp source/report.html reports/report.html && cp source/metrics.json reports/metrics.json
    deps: [source/report.html, source/metrics.json, models/edgetpu, reports/fidelity.json]
    params:
      - toolchain.yaml:
    outs:
      - reports/report.html:
          cache: false
    metrics:
      - reports/metrics.json:
          cache: false
"""


def environment():
    env = dict(os.environ)
    env.update({"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
                "PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", "")})
    return env


def run(command, cwd, check=True):
    done = subprocess.run(command, cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if check and done.returncode != 0:
        raise AssertionError("{} failed ({}):\n{}\n{}".format(
            " ".join(command), done.returncode, done.stdout[-3000:], done.stderr[-3000:]))
    return done


def tiny_quantized_tflite() -> bytes:
    """A two-convolution model, full-integer quantized with uint8 input and output."""
    import tensorflow as tf
    layers = tf.keras.layers
    inputs = layers.Input((16, 16, 3), batch_size=1)
    hidden = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return convert(tf.keras.Model(inputs, layers.Conv2D(4, 1)(hidden)), "uint8")


def _read(path):
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def write_compile_output(repo, kind, tflite_path=None):
    """source/edgetpu/ as the compile stage writes it: kind "v15", "v16_partial" or "predicted"."""
    folder = os.path.join(repo, "source", "edgetpu")
    shutil.rmtree(folder, ignore_errors=True)
    if kind == "predicted":
        result = predict_file(tflite_path, "16.0.384591198", 12,
                              display_path="models/facenet_keras.tflite")
        _write(os.path.join(folder, "compiler_stdout.txt"), render_compiler_stdout(result))
        _write(os.path.join(folder, "facenet_keras_edgetpu.log"), render_operation_log(result))
    else:
        stdout, log = {"v15": (V15_STDOUT, V15_LOG),
                       "v16_partial": (V16_PARTIAL_STDOUT, V16_PARTIAL_LOG)}[kind]
        result = parse_compiler_stdout(_read(stdout))
        shutil.copyfile(stdout, os.path.join(_made(folder), "compiler_stdout.txt"))
        shutil.copyfile(log, os.path.join(folder, "facenet_keras_edgetpu.log"))
        # Stand-in for the compiler's model: this machine has no edgetpu_compiler.
        _write(os.path.join(folder, "facenet_keras_edgetpu.tflite"),
               b"edgetpu model stand-in " + kind.encode())
    _write(os.path.join(folder, "compile_result.json"),
           json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")


def _made(folder):
    os.makedirs(folder, exist_ok=True)
    return folder


def write_metrics(repo, mapped):
    _write(os.path.join(repo, "source", "metrics.json"),
           json.dumps({"edgetpu": {"mapped_operations": mapped}}, sort_keys=True) + "\n")


def make_repo(repo, kind, tflite_bytes, params_source=None):
    """A git + DVC repository holding the stand-in pipeline, reproduced and committed."""
    os.makedirs(repo)
    with open(params_source or os.path.join(REPO, "params.yaml"), "r",
              encoding="utf-8") as handle:
        fetch = yaml.safe_load(handle)["fetch_inputs"]
    params = {"inputs": {"model": "models/facenet_keras.h5", "photos": "data/photos"},
              "fetch_inputs": fetch, "runner": {"kind": "local"}}
    _write(os.path.join(repo, "params.yaml"), yaml.safe_dump(params, sort_keys=True))
    _write(os.path.join(repo, "toolchain.yaml"), yaml.safe_dump(TOOLCHAIN, sort_keys=True))
    _write(os.path.join(repo, "dvc.yaml"), DVC_YAML)
    _write(os.path.join(repo, "source", "model.h5"), b"keras model stand-in")
    _write(os.path.join(repo, "source", "quantized.tflite"), tflite_bytes)
    _write(os.path.join(repo, "source", "report.html"), "<html><body>report</body></html>\n")
    _write(os.path.join(repo, "source", "fidelity.json"), '{"cosine": 0.99}\n')
    write_metrics(repo, 214)
    write_compile_output(repo, kind, os.path.join(repo, "source", "quantized.tflite"))
    run(["git", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    commit(repo, "first run")
    return repo


def commit(repo, message):
    run([sys.executable, "-m", "dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo)


def publish(repo, *args, check=False):
    return run([sys.executable, "-m", "facenet_edgetpu.publish"] + list(args), repo, check)
