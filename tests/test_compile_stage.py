"""The compile stage: the real-compiler path (with tests/fake_edgetpu_compiler, a FAKE that
imitates the compiler's interface) and the predicted path (no compiler installed)."""
import json
import os
import subprocess
import sys
import time

import pytest

from edgetpu_analyzer.parse import parse_compiler_stdout, parse_operation_log
from edgetpu_analyzer.result import PREDICTION_MARKER, STATUS_MAPPED
from facenet_edgetpu.stages import compile as compile_stage
from facenet_edgetpu.stages.compile import CompileStageError
from tests.tiny_models import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_COMPILER = os.path.join(REPO, "tests", "fake_edgetpu_compiler")
OUTPUT_FILES = {"compile_result.json", "compiler_stdout.txt", "facenet_keras_edgetpu.log",
                "facenet_keras_edgetpu.tflite"}


@pytest.fixture(scope="module")
def tiny_int8_model(tmp_path_factory):
    """A small full-integer (int8 I/O) model saved under the pipeline's model name."""
    import tensorflow as tf
    layers = tf.keras.layers
    inp = layers.Input((8, 8, 3), batch_size=1)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("compile_input") / "facenet_keras.tflite"
    path.write_bytes(convert(tf.keras.Model(inp, x), "int8"))
    return str(path)


def params(**overrides):
    values = {"compiler": FAKE_COMPILER, "min_runtime_version": 12, "show_operations": True,
              "timeout_sec": 180, "predict_compiler_version": "16.0.384591198",
              "min_mapped_fraction": 0.0}
    values.update(overrides)
    return values


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Configure the fake compiler; returns a function reading the command lines it got."""
    argv_file = tmp_path / "fake_argv.jsonl"
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_ARGV_FILE", str(argv_file))
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_MODE", "mapped")
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_VERSION", "16.0.384591198")

    def calls():
        with open(str(argv_file)) as handle:
            return [json.loads(line) for line in handle]
    return calls


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# --- real compiler (fake) -----------------------------------------------------------------------

def test_real_compiler_outputs_are_parsed_and_kept(tiny_int8_model, tmp_path, fake):
    out = str(tmp_path / "edgetpu")
    result = compile_stage.run(params(), tiny_int8_model, out)
    assert set(os.listdir(out)) == OUTPUT_FILES
    assert not result.predicted and result.compiler_version == "16.0.384591198"
    assert result.compile_time_ms == 1234 and result.min_runtime_version == 12
    assert (result.total_operations, result.operations_on_edgetpu) == (11, 11)
    stored = json.loads(read(os.path.join(out, "compile_result.json")))
    assert stored["predicted"] is False and stored["total_operations"] == 11
    assert stored["operators"][1] == {"operator": "CONV_2D", "count": 5, "status": STATUS_MAPPED}
    stdout_text = read(os.path.join(out, "compiler_stdout.txt"))
    assert stdout_text.startswith("Edge TPU Compiler version 16.0.384591198\n")
    assert "Input model: facenet_keras.tflite\n" in stdout_text    # run beside a copy
    assert parse_compiler_stdout(stdout_text).operators == result.operators
    assert parse_operation_log(read(os.path.join(out, "facenet_keras_edgetpu.log"))).operators \
        == result.operators
    with open(os.path.join(out, "facenet_keras_edgetpu.tflite"), "rb") as handle:
        assert handle.read().startswith(b"FAKE-EDGETPU-COMPILED")
    # Real results get the model's operator order; the fake's table does not match the tiny
    # model's operators, so their statuses stay unknown rather than guessed.
    assert [op.operator for op in result.execution_order] == ["CONV_2D", "MEAN",
                                                              "FULLY_CONNECTED"]
    assert [op.status for op in result.execution_order] == [None, STATUS_MAPPED, STATUS_MAPPED]
    version_call, compile_call = fake()
    assert version_call == ["--version"]
    assert compile_call == ["--min_runtime_version", "12", "--show_operations",
                            "--timeout_sec", "180", "facenet_keras.tflite"]


def test_timeout_flag_only_for_compiler_16(tiny_int8_model, tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_VERSION", "15.0.340273435")  # rejects --timeout_sec
    result = compile_stage.run(params(show_operations=False), tiny_int8_model,
                               str(tmp_path / "out"))
    assert result.compiler_version == "15.0.340273435"
    assert "--timeout_sec" not in fake()[1] and "--show_operations" not in fake()[1]
    # Without --show_operations the table comes from the .log file.
    assert [row.operator for row in result.operators][:2] == ["QUANTIZE", "CONV_2D"]
    assert "Operator" not in read(str(tmp_path / "out" / "compiler_stdout.txt"))


@pytest.mark.parametrize("mode,message", [
    ("fail", "exit status 1"), ("fail_exit0", "large activation tensors"),
    ("no_log", "did not write facenet_keras_edgetpu.log")])
def test_compiler_failure_fails_the_stage_and_leaves_nothing(
        tiny_int8_model, tmp_path, fake, monkeypatch, mode, message):
    out = tmp_path / "edgetpu"
    out.mkdir()
    (out / "compile_result.json").write_text("{}")       # stale output from an earlier run
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_MODE", mode)
    with pytest.raises(CompileStageError, match=message):
        compile_stage.run(params(), tiny_int8_model, str(out))
    assert not out.exists()
    assert [name for name in os.listdir(str(tmp_path)) if "partial" in name] == []


def test_compiler_that_hangs_is_stopped(tiny_int8_model, tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_VERSION", "15.0.340273435")
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_MODE", "hang")
    start = time.monotonic()
    with pytest.raises(CompileStageError, match="did not finish within 1 s"):
        compile_stage.run(params(timeout_sec=1), tiny_int8_model, str(tmp_path / "out"))
    assert time.monotonic() - start < 20
    assert not (tmp_path / "out").exists()


def test_min_mapped_fraction(tiny_int8_model, tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_COMPILER_MODE", "partial")
    reported = compile_stage.run(params(), tiny_int8_model, str(tmp_path / "report_only"))
    assert (reported.operations_on_edgetpu, reported.operations_on_cpu) == (3, 4)
    assert os.path.isfile(str(tmp_path / "report_only" / "compile_result.json"))
    with pytest.raises(CompileStageError) as error:
        compile_stage.run(params(min_mapped_fraction=0.5), tiny_int8_model,
                          str(tmp_path / "strict"))
    text = str(error.value)
    assert "3 of 7 operations map" in text and "below compile.min_mapped_fraction = 50.0%" in text
    assert "LEAKY_RELU x1 (Operation not supported)" in text
    assert not (tmp_path / "strict").exists()


# --- no compiler: prediction --------------------------------------------------------------------

def test_without_compiler_the_artifacts_are_predicted_and_marked(tiny_int8_model, tmp_path):
    out = str(tmp_path / "edgetpu")
    result = compile_stage.run(params(compiler="edgetpu_compiler_not_installed_here"),
                               tiny_int8_model, out)
    assert set(os.listdir(out)) == OUTPUT_FILES - {"facenet_keras_edgetpu.tflite"}
    stored = json.loads(read(os.path.join(out, "compile_result.json")))
    assert stored["predicted"] is True and result.predicted
    assert stored["compiler_version"] == "16.0.384591198" and stored["min_runtime_version"] == 12
    assert stored["operations_on_cpu"] == 0 and stored["execution_order"]
    for name in ("compiler_stdout.txt", "facenet_keras_edgetpu.log"):
        first_line = read(os.path.join(out, name)).splitlines()[0]
        assert first_line == PREDICTION_MARKER
    stdout_text = read(os.path.join(out, "compiler_stdout.txt"))
    assert "Input model: facenet_keras.tflite\n" in stdout_text
    assert parse_compiler_stdout(stdout_text).predicted


def test_predicted_result_is_held_to_min_mapped_fraction(tiny_int8_model, tmp_path):
    # int8 with runtime 11: nothing maps (ge#222).
    with pytest.raises(CompileStageError, match="0 of 3 operations map .*\\(predicted\\)"):
        compile_stage.run(params(compiler="absent-compiler", min_runtime_version=11,
                                 min_mapped_fraction=0.5), tiny_int8_model,
                          str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_main_runs_from_the_repository_root(tiny_int8_model, tmp_path):
    (tmp_path / "models").mkdir()
    with open(tiny_int8_model, "rb") as handle:
        (tmp_path / "models" / "facenet_keras.tflite").write_bytes(handle.read())
    import yaml
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"compile": params(compiler="edgetpu_compiler_absent")}))
    env = dict(os.environ, PYTHONPATH=REPO)
    command = [sys.executable, "-m", "facenet_edgetpu.stages.compile",
               "--model", "models/facenet_keras.tflite", "--out", "models/edgetpu"]
    done = subprocess.run(command, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(read(str(tmp_path / "models/edgetpu/compile_result.json")))["predicted"]
    os.remove(str(tmp_path / "models" / "facenet_keras.tflite"))
    done = subprocess.run(command, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines()[-1].startswith("compile failed: ")
    assert b"Traceback" not in done.stderr
    assert not (tmp_path / "models" / "edgetpu").exists()


# --- pure helpers -------------------------------------------------------------------------------

def test_command_line_and_names():
    command = compile_stage.compiler_command("/x/edgetpu_compiler", "14.1.317412892",
                                             "m.tflite", 13, False, 60)
    assert command == ["/x/edgetpu_compiler", "--min_runtime_version", "13", "m.tflite"]
    assert compile_stage.wall_clock_limit("16.0.384591198", 100) == 130
    assert compile_stage.wall_clock_limit("15.0.340273435", 100) == 100
    assert compile_stage.output_names("models/x.tflite")["log"] == "x_edgetpu.log"
    assert compile_stage.usable_compiler(FAKE_COMPILER) == FAKE_COMPILER
    assert compile_stage.usable_compiler("no-such-edgetpu-compiler") is None
    with pytest.raises(CompileStageError, match="not an executable.*Set compile.compiler"):
        compile_stage.usable_compiler(os.path.join(REPO, "pyproject.toml"))
    # A path the user wrote that does not exist is a mistake, not "predict instead".
    with pytest.raises(CompileStageError, match="edgetpu_compilr does not exist.*Set compile"):
        compile_stage.usable_compiler(os.path.join(REPO, "no", "edgetpu_compilr"))
