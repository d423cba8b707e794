"""The pull-request comment body on real compile results: no change, a regression, and a
result that was predicted, not compiled (tests/publish_repo.py builds the repositories)."""
from __future__ import annotations

import os

import pytest

from facenet_edgetpu.publish.comment import MARKER
from tests import publish_repo


@pytest.fixture(scope="module")
def tflite_bytes():
    return publish_repo.tiny_quantized_tflite()


def two_commits(tmp_path_factory, tflite_bytes, name, change):
    """A repository whose HEAD~1 holds compiler 15's real result and HEAD what `change` did."""
    repo = publish_repo.make_repo(str(tmp_path_factory.mktemp(name) / "repo"), "v15",
                                  tflite_bytes)
    change(repo)
    publish_repo.commit(repo, "the pull request")
    return repo


def comment(repo, *extra):
    done = publish_repo.publish(repo, "comment", "--base", "HEAD~1", *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def unchanged(tmp_path_factory, tflite_bytes):
    def touch_readme(repo):
        with open(os.path.join(repo, "README.md"), "w", encoding="utf-8") as handle:
            handle.write("docs only\n")
    return two_commits(tmp_path_factory, tflite_bytes, "unchanged", touch_readme)


@pytest.fixture(scope="module")
def regressed(tmp_path_factory, tflite_bytes):
    def compiler_16(repo):
        publish_repo.write_compile_output(repo, "v16_partial")
        publish_repo.write_metrics(repo, 211)
    return two_commits(tmp_path_factory, tflite_bytes, "regressed", compiler_16)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tflite_bytes):
    def predict(repo):
        publish_repo.write_compile_output(
            repo, "predicted", os.path.join(repo, "source", "quantized.tflite"))
    return two_commits(tmp_path_factory, tflite_bytes, "predicted", predict)


def test_no_change(unchanged):
    body = comment(unchanged)
    assert body.splitlines()[0] == MARKER
    assert ":white_check_mark: **No change** in the Edge TPU compile result." in body
    assert "- **Verdict:** unchanged" in body
    assert "Regression" not in body and "Predicted, not compiled" not in body
    assert body.rstrip().endswith("No metric changed.")


def test_regression(regressed):
    body = comment(regressed)
    assert body.splitlines()[0] == MARKER
    headline = body.splitlines()[3]
    assert headline.startswith(":x: **Regression** against the base: fewer operations mapped "
                               "to the Edge TPU: 214 -> 211 (-3)")
    assert "- **Verdict:** :x: regression" in body
    assert "| `CONV_2D` |" in body
    metrics = body[body.index("### Metrics (`dvc metrics diff HEAD~1`)"):]
    row = next(line for line in metrics.splitlines() if "mapped_operations" in line)
    assert "reports/metrics.json" in row and "214" in row and "211" in row


def test_predicted_not_compiled(predicted):
    body = comment(predicted)
    assert body.splitlines()[0] == MARKER
    assert (":warning: **Predicted, not compiled**: no Edge TPU compiler ran for this result. "
            "The operator table is the analyzer's prediction of what edgetpu_compiler "
            "16.0.384591198 would print") in body
    assert "| output | real, compiled | predicted, compiled |" in body


def test_the_body_is_stable_and_can_be_written_to_a_file(regressed, tmp_path):
    out = str(tmp_path / "comment.md")
    assert comment(regressed, "--out", out) == ""
    with open(out, "r", encoding="utf-8") as handle:
        assert handle.read() == comment(regressed)


def test_an_unknown_base_is_one_clear_line(unchanged):
    done = publish_repo.publish(unchanged, "comment", "--base", "no-such-branch")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "the base compile result (no-such-branch)" in done.stderr
