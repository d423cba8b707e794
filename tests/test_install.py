"""`pip install .` in a clean virtual environment gives working console scripts.

A fresh venv (from the interpreter running the tests) installs the repository, non-editable,
from a copy of its tracked files (so no build folder lands in the work tree), with the core
dependencies of pyproject.toml from PyPI. Then the installed `edgetpu-predict` predicts a
real model of the compiler-output corpus and must give the operator table the real compiler
printed for it, and the installed `oplog-diff` compares two real compiler outputs of
tests/data. The installed package must hold every tracked file of both packages (the report's
templates and stylesheet included) and no TensorFlow.

The corpus lives beside the repository ($FACENET_EDGETPU_CORPUS, else
<repo>/../shared/edgetpu-corpus; see tests/test_predictor_score.py): without it the prediction
test skips, except in CI (CI=true), where it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest

from edgetpu_analyzer.diff import diff_results
from edgetpu_analyzer.diff_render import render_json
from edgetpu_analyzer.oplog_diff import EXIT_REGRESSION
from edgetpu_analyzer.result_sources import parse_result_text
from edgetpu_analyzer.result import CompileResult

pytestmark = [pytest.mark.network, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
PACKAGES = ("facenet_edgetpu", "edgetpu_analyzer")
# A real model and the operation log the real edgetpu_compiler 16 wrote for it (corpus pair
# 019: FULLY_CONNECTED, PACK, RESHAPE, TRANSPOSE, all mapped).
CORPUS_MODEL = os.path.join("models", "019_rf_gemm_6op_fully_mapped.tflite")
CORPUS_LOG = os.path.join("logs", "019_rf_gemm_6op_fully_mapped.log")
# Two real compiler outputs of FaceNet: compiler 15 maps all, compiler 16 leaves 3 CONV_2D out.
BASELINE = os.path.join(DATA, "oplog_facenet_v15_stdout.txt")
REGRESSED = os.path.join(DATA, "oplog_facenet_v16_partial_stdout.txt")
# What the pipeline extra brings and the console scripts must not need.
HEAVY_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "keras", "tf-keras", "jax"}


class Venv:
    def __init__(self, root: str) -> None:
        self.root = root
        self.bin = os.path.join(root, "bin")
        self.python = os.path.join(self.bin, "python")

    def run(self, command: List[str], cwd: str, check: bool = True
            ) -> "subprocess.CompletedProcess[str]":
        # Outside the repository and without PYTHONPATH: only what was installed is importable.
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)
        if check and done.returncode != 0:
            raise AssertionError("{} failed with exit {}:\n{}\n{}".format(
                " ".join(command), done.returncode, done.stdout[-4000:], done.stderr[-4000:]))
        return done

    def site_packages(self, cwd: str) -> str:
        return self.run([self.python, "-c", "import sysconfig; "
                         "print(sysconfig.get_paths()['purelib'])"], cwd).stdout.strip()


def tracked_files() -> List[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, stdout=subprocess.PIPE,
                            check=True).stdout.decode("utf-8").split("\0")
    return [path for path in listed if path and os.path.isfile(os.path.join(REPO, path))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("install"))


@pytest.fixture(scope="module")
def venv(workdir: str) -> Venv:
    source = os.path.join(workdir, "source")
    for path in tracked_files():
        os.makedirs(os.path.dirname(os.path.join(source, path)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, path), os.path.join(source, path))
    environment = Venv(os.path.join(workdir, "venv"))
    subprocess.run([sys.executable, "-m", "venv", environment.root], check=True)
    environment.run([environment.python, "-m", "pip", "install", "--quiet", source], workdir)
    return environment


@pytest.fixture(scope="module")
def corpus() -> str:
    directory = os.environ.get("FACENET_EDGETPU_CORPUS") or os.path.join(
        os.path.dirname(REPO), "shared", "edgetpu-corpus")
    if not os.path.isfile(os.path.join(directory, CORPUS_MODEL)):
        message = "no compiler-output corpus with {} at {} (set FACENET_EDGETPU_CORPUS)".format(
            CORPUS_MODEL, directory)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return directory


def table(result: CompileResult) -> Dict[str, Dict[str, int]]:
    rows: Dict[str, Dict[str, int]] = {}
    for row in result.operators:
        rows.setdefault(row.operator, {})[row.status] = row.count
    return rows


def test_installed_edgetpu_predict_gives_the_real_compilers_table(venv, workdir, corpus):
    with open(os.path.join(corpus, CORPUS_LOG), encoding="utf-8") as handle:
        real, _ = parse_result_text(handle.read(), CORPUS_LOG)
    model = os.path.join(corpus, CORPUS_MODEL)
    command = [os.path.join(venv.bin, "edgetpu-predict"), model,
               "--compiler-version", real.compiler_version]

    printed = venv.run(command, workdir)
    predicted, _ = parse_result_text(printed.stdout, "edgetpu-predict stdout")
    assert predicted.predicted and predicted.succeeded
    assert predicted.compiler_version == real.compiler_version
    assert predicted.input_model == model
    assert table(predicted) == table(real) and table(real)

    as_json = json.loads(venv.run(command + ["--json"], workdir).stdout)
    assert table(CompileResult.from_dict(as_json)) == table(real)
    assert as_json["total_operations"] == real.total_operations


def test_installed_oplog_diff_reports_the_regression(venv, workdir):
    done = venv.run([os.path.join(venv.bin, "oplog-diff"), BASELINE, REGRESSED, "--json",
                     "--fail-on-regression"], workdir, check=False)
    assert done.returncode == EXIT_REGRESSION, done.stderr
    sides = []
    for path in (BASELINE, REGRESSED):
        with open(path, encoding="utf-8") as handle:
            sides.append(parse_result_text(handle.read(), path))
    (result_a, kind_a), (result_b, kind_b) = sides
    # The installed command says what the repository's code computes from the same files.
    expected = render_json(diff_results(result_a, result_b),
                           "{} ({} file)".format(BASELINE, kind_a),
                           "{} ({} file)".format(REGRESSED, kind_b))
    assert done.stdout == expected
    report = json.loads(done.stdout)
    assert report["verdict"] == "regression"
    left_the_edgetpu = sum(move["count"] for move in report["status_moves"]
                           if move["from_status"] == "Mapped to Edge TPU")
    assert left_the_edgetpu == (result_a.operations_on_edgetpu or 0) - (
        result_b.operations_on_edgetpu or 0) > 0

    text = venv.run([os.path.join(venv.bin, "oplog-diff"), BASELINE, REGRESSED], workdir)
    assert text.stdout.startswith("A: {}".format(BASELINE)) and "Verdict: regression" in text.stdout


def test_installed_packages_hold_every_tracked_file(venv, workdir):
    site = venv.site_packages(workdir)
    located = venv.run([venv.python, "-c", "import edgetpu_analyzer, facenet_edgetpu; "
                        "print(edgetpu_analyzer.__file__); print(facenet_edgetpu.__file__)"],
                       workdir).stdout.split()
    assert all(path.startswith(site + os.sep) for path in located), (located, site)
    wanted = [path for path in tracked_files() if path.split("/")[0] in PACKAGES]
    data = [path for path in wanted if not path.endswith(".py")]
    # The report's templates and stylesheet are package data, not modules.
    assert "facenet_edgetpu/report/report.css" in data
    assert any(path.startswith("facenet_edgetpu/report/templates/") for path in data)
    for path in wanted:
        installed = os.path.join(site, path)
        assert os.path.isfile(installed), "{} is not in the installed package".format(path)
        with open(installed, "rb") as copy, open(os.path.join(REPO, path), "rb") as original:
            assert copy.read() == original.read(), path


def test_install_brings_the_core_dependencies_and_no_tensorflow(venv, workdir):
    listed = json.loads(venv.run([venv.python, "-m", "pip", "list", "--format", "json"],
                                 workdir).stdout)
    names = {entry["name"].lower().replace("_", "-") for entry in listed}
    assert {"facenet-edgetpu-pipeline", "numpy", "pyyaml", "tflite"} <= names
    assert not names & HEAVY_DISTRIBUTIONS, sorted(names & HEAVY_DISTRIBUTIONS)
